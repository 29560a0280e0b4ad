"""Architecture checks: each passes on the reference and fails for the right reason on a typical mistake."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.checks import run_check
from reference.classifiers import CNN, FeedForward, FeedForwardLogits
from reference.mistakes import CNNWithoutSecondPool, FeedForwardNoActivation, FeedForwardSoftmax
from tests.checks.conftest import Spec


def test_architecture_matches_reference(make_context) -> None:
    result = run_check(make_context(CNN(), reference=CNN()), Spec("architecture_matches", points=2))
    assert (result.status, result.score, result.message) == ("passed", 2.0, "")


def test_architecture_names_the_missing_pool(make_context) -> None:
    result = run_check(make_context(CNNWithoutSecondPool(), reference=CNN()), Spec("architecture_matches", points=2))
    assert result.status == "failed" and result.score == 0
    assert "missing: MaxPool2d(kernel 2, stride 2) (after Conv2d(16->32, kernel 3, stride 1, padding 0))" in result.message
    assert "expected Linear(800->10), found Linear(3872->10)" in result.message


def test_architecture_catches_a_network_without_nonlinearity(make_context) -> None:
    ctx = make_context(FeedForwardNoActivation(), reference=FeedForward(), source_text="loss = nn.NLLLoss()")
    result = run_check(ctx, Spec("architecture_matches"))
    assert result.status == "failed"
    assert result.message.startswith("your network has no non-linearity")


def test_architecture_accepts_functional_relu(make_context) -> None:
    class FunctionalNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(784, 128), nn.Linear(128, 64), nn.Linear(64, 10)

        def forward(self, x):
            x = torch.relu(self.fc1(x.flatten(1)))
            return torch.log_softmax(self.fc3(torch.relu(self.fc2(x))), dim=1)

    ctx = make_context(FunctionalNet(), reference=FeedForward(), source_text="x = F.relu(self.fc1(x))")
    assert run_check(ctx, Spec("architecture_matches")).status == "passed"


def test_no_model_fails_with_the_reason(make_context) -> None:
    result = run_check(make_context(None, reference=CNN()), Spec("architecture_matches"))
    assert result.status == "failed"
    assert result.message == "no PyTorch model (nn.Module) was found after running your code"


def test_parameter_count(make_context) -> None:
    assert run_check(make_context(CNN()), Spec("parameter_count", equals=12810)).status == "passed"
    result = run_check(make_context(CNNWithoutSecondPool()), Spec("parameter_count", equals=12810))
    assert result.message == "the model has 43,530 trainable parameters; the assignment's network has 12,810"


def test_feature_width_800(make_context) -> None:
    result = run_check(make_context(CNN(), reference=CNN()), Spec("feature_width", layer="Flatten", equals=800))
    assert result.status == "passed"
    assert result.details["measured"] == 800


def test_feature_width_wrong_flatten_with_hint(make_context) -> None:
    result = run_check(make_context(CNNWithoutSecondPool(), reference=CNN()), Spec("feature_width", layer="Flatten", equals=800))
    assert result.status == "failed"
    assert result.message == (
        "your Flatten produces 3,872 features (from 32 x 11 x 11); the assignment's network has 800 here:"
        " did you drop a MaxPool2d layer?"
    )


def test_feature_width_when_the_forward_pass_breaks(make_context) -> None:
    broken = CNN()
    broken.main[5] = nn.Identity()  # pool dropped but Linear(800) kept: the forward pass fails
    result = run_check(make_context(broken, reference=CNN()), Spec("feature_width", layer="Flatten", equals=800))
    assert result.status == "failed"
    assert result.message == (
        "your Linear layer expects 800 input features but your Flatten produces 3,872 (from 32 x 11 x 11):"
        " did you drop a MaxPool2d layer?"
    )


def test_output_kind(make_context, digits) -> None:
    images, _ = digits
    passed = run_check(make_context(FeedForward(), images=images), Spec("output_kind", equals="log_probabilities"))
    assert passed.status == "passed"
    failed = run_check(make_context(FeedForwardSoftmax(), images=images), Spec("output_kind", equals="log_probabilities"))
    assert failed.message == (
        "your network outputs probabilities (Softmax); the task asks for log-probabilities (LogSoftmax): a Softmax "
        "output fed to NLLLoss trains badly; use LogSoftmax with NLLLoss, or logits with CrossEntropyLoss"
    )
    logits = run_check(make_context(FeedForwardLogits(), images=images), Spec("output_kind", equals="logits"))
    assert logits.status == "passed"


def test_loss_choice(make_context, digits) -> None:
    images, _ = digits
    good = make_context(FeedForward(), images=images, source_text="criterion = nn.NLLLoss()")
    assert run_check(good, Spec("loss_choice")).status == "passed"
    softmax = make_context(FeedForwardSoftmax(), images=images, source_text="criterion = nn.NLLLoss()")
    result = run_check(softmax, Spec("loss_choice"))
    assert result.message == (
        "your network outputs probabilities (Softmax) and is trained with NLLLoss; NLLLoss expects "
        "log-probabilities: use LogSoftmax, or drop the Softmax and use CrossEntropyLoss"
    )
    logits_nll = make_context(FeedForwardLogits(), images=images, source_text="loss = F.nll_loss(out, y)")
    assert run_check(logits_nll, Spec("loss_choice")).message == (
        "your network outputs logits (no output activation) but is trained with NLLLoss; "
        "with logits (no output activation) use CrossEntropyLoss"
    )
    none = make_context(FeedForward(), images=images, source_text="")
    assert run_check(none, Spec("loss_choice")).message == "no classification loss (NLLLoss or CrossEntropyLoss) was found in your code"


# -- dl2025-a2 1.2: logits with CrossEntropyLoss are as correct as LogSoftmax with NLLLoss -----------------------

LOGITS_TOO = Spec("architecture_matches", params={"also": "reference.classifiers:FeedForwardLogits"})
"""The feed-forward task's entry: the network without line (5) is accepted beside the assignment's."""
EITHER_OUTPUT = ["log_probabilities", "logits"]


def test_the_network_without_its_logsoftmax_matches_when_the_task_accepts_it(make_context) -> None:
    for model in (FeedForward(), FeedForwardLogits()):
        assert run_check(make_context(model, reference=FeedForward()), LOGITS_TOO).status == "passed"


def test_a_network_the_entry_also_accepts_passes_and_is_named(make_context) -> None:
    """``params.also`` is compared layer by layer like the task's own network (here: a CNN task accepting the
    variant without its second pool, to show the mechanism on layers the comparison counts)."""
    also = Spec("architecture_matches", params={"also": ["reference.mistakes:CNNWithoutSecondPool"]})
    result = run_check(make_context(CNNWithoutSecondPool(), reference=CNN()), also)
    assert (result.status, result.details["matched"]) == ("passed", "reference.mistakes:CNNWithoutSecondPool")
    other = run_check(make_context(FeedForward(), reference=CNN()), also)
    assert other.status == "failed" and other.message.startswith("your network differs from the assignment's:\n  ")
    assert "matched" not in other.details


def test_an_accepted_network_that_does_not_import_fails_the_rubric() -> None:
    from pydantic import ValidationError

    from harness.checks.architecture import ArchitectureOptions

    with pytest.raises(ValidationError, match="module 'reference.classifiers' has no class 'Logits'"):
        ArchitectureOptions(also="reference.classifiers:Logits")


def test_output_kind_accepts_either_listed_kind(make_context, digits) -> None:
    images, _ = digits
    for model in (FeedForward(), FeedForwardLogits()):
        assert run_check(make_context(model, images=images), Spec("output_kind", equals=EITHER_OUTPUT)).status == "passed"
    failed = run_check(make_context(FeedForwardSoftmax(), images=images), Spec("output_kind", equals=EITHER_OUTPUT))
    assert failed.message == (
        "your network outputs probabilities (Softmax); the task asks for log-probabilities (LogSoftmax) or logits "
        "(no output activation): a Softmax output fed to NLLLoss trains badly; use LogSoftmax with NLLLoss, or logits "
        "with CrossEntropyLoss"
    )


def test_both_correct_pairings_pass_and_both_wrong_ones_fail_in_the_feed_forward_task(make_context, digits) -> None:
    """What the feed-forward task's three output and loss checks say about each pairing (dl2025-a2 1.1 and 1.2)."""
    images, _ = digits

    def verdicts(model, source):
        ctx = make_context(model, reference=FeedForward(), images=images, source_text=source)
        results = [run_check(ctx, spec) for spec in (LOGITS_TOO, Spec("output_kind", equals=EITHER_OUTPUT), Spec("loss_choice"))]
        return [r.message for r in results if r.status != "passed"]

    assert verdicts(FeedForward(), "criterion = nn.NLLLoss()") == []
    assert verdicts(FeedForwardLogits(), "criterion = nn.CrossEntropyLoss()") == []
    assert verdicts(FeedForwardSoftmax(), "criterion = nn.NLLLoss()") == [
        "your network outputs probabilities (Softmax); the task asks for log-probabilities (LogSoftmax) or logits "
        "(no output activation): a Softmax output fed to NLLLoss trains badly; use LogSoftmax with NLLLoss, or logits "
        "with CrossEntropyLoss",
        "your network outputs probabilities (Softmax) and is trained with NLLLoss; NLLLoss expects log-probabilities: "
        "use LogSoftmax, or drop the Softmax and use CrossEntropyLoss",
    ]
    assert verdicts(FeedForward(), "criterion = nn.CrossEntropyLoss()") == [
        "your network outputs log-probabilities (LogSoftmax) but is trained with CrossEntropyLoss; "
        "with log-probabilities (LogSoftmax) use NLLLoss"
    ]


# -- a record the exported weights contradict is not believed ---------------------------------------------------

def _claiming(ctx, **fields):
    """``ctx`` with its model record changed as a replaced probe would write it (the weights stay as exported)."""
    ctx.model = {**ctx.model, **fields}
    return ctx


def test_layers_recorded_unlike_the_exported_weights_are_not_believed(make_context) -> None:
    ctx = make_context(CNNWithoutSecondPool())  # no reference: any task
    lying = [dict(m, hyper={**m["hyper"], "in_features": 800}) if m["type"] == "Linear" else m for m in ctx.model["modules"]]
    ctx = _claiming(ctx, modules=lying)
    result = run_check(ctx, Spec("parameter_count", equals=43_530))
    assert (result.status, result.message) == ("failed", (
        "the layers recorded while your code ran do not match the weights your model exported (was the grader's probe "
        "replaced or torch patched?): main.6: Linear(800->10) recorded, weights of shape (10, 3872)"))


def test_a_feature_width_the_exported_weights_contradict_is_not_believed(make_context) -> None:
    ctx = make_context(CNNWithoutSecondPool())
    shapes = [dict(s, output_shape=[2, 800]) if s["type"] == "Flatten" else s for s in ctx.model["layer_shapes"]]
    result = run_check(_claiming(ctx, layer_shapes=shapes), Spec("feature_width", layer="Flatten", equals=800))
    assert (result.status, result.message) == ("failed", (
        "the layer shapes recorded while your code ran say your Flatten produces 800 features, but the weights your "
        "model exported take 3,872 in the next Linear layer: the grader counts 3,872; the assignment's network has "
        "800 here"))


def test_more_trainable_parameters_than_the_exported_weights_hold_are_not_believed(make_context) -> None:
    ctx = _claiming(make_context(CNN()), trainable_parameters=50_000, total_parameters=12_810)
    result = run_check(ctx, Spec("parameter_count", equals=50_000))
    assert (result.status, result.message) == ("failed", (
        "your model's record claims 50,000 trainable parameters, more than the 12,810 in the weights it exported "
        "(was torch patched?)"))


def test_the_assignments_layers_beside_another_models_predictions_lose_the_architecture_points(make_context, digits) -> None:
    images, _ = digits

    class Ghost(CNN):
        """The assignment's layers, never used: the exported predictions come from elsewhere."""

        def forward(self, x):  # a flip is no layer: the traced computation is the assignment's
            return torch.flip(super().forward(x), dims=[1])

    ctx = make_context(Ghost(), reference=CNN(), images=images)
    for check in ("architecture_matches", "parameter_count", "feature_width"):
        result = run_check(ctx, Spec(check, equals=12_810 if check == "parameter_count" else 800, layer="Flatten"))
        assert result.status == "failed"
        assert result.message.startswith(
            "the grader cannot tell that this is the network your notebook used: the predictions your notebook "
            "exported are not what your network computes on the test images: the grader ran the weights it exported "
            "in the assignment's network on all 200 test images")
    honest = make_context(CNN(), reference=CNN(), images=images)
    assert run_check(honest, Spec("architecture_matches")).status == "passed"


class FunctionalCNN(nn.Module):
    """The assignment's CNN with only conv/linear modules: ReLU, pooling, flatten and LogSoftmax are calls."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2, self.fc = nn.Conv2d(1, 16, 3), nn.Conv2d(16, 32, 3), nn.Linear(800, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


def test_a_functional_cnn_passes_architecture_parameters_and_the_800_features(make_context, digits) -> None:
    images, _ = digits
    ctx = make_context(FunctionalCNN(), reference=CNN(), images=images)
    result = run_check(ctx, Spec("architecture_matches", points=2))
    assert (result.status, result.message) == ("passed", "")
    assert result.details["student_layers"] == result.details["reference_layers"]
    assert run_check(ctx, Spec("parameter_count", equals=12_810)).status == "passed"
    width = run_check(ctx, Spec("feature_width", layer="Flatten", equals=800))
    assert (width.status, width.details["measured"]) == ("passed", 800)


def test_a_functional_cnn_without_its_second_pool_is_told_so(make_context) -> None:
    class OnePool(FunctionalCNN):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3872, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            return F.log_softmax(self.fc(F.relu(self.conv2(x)).view(x.size(0), -1)), dim=1)

    ctx = make_context(OnePool(), reference=CNN())
    result = run_check(ctx, Spec("architecture_matches"))
    assert "missing: MaxPool2d(kernel 2, stride 2) (after Conv2d(16->32, kernel 3, stride 1, padding 0))" in result.message
    width = run_check(ctx, Spec("feature_width", layer="Flatten", equals=800))
    assert width.message == "your Flatten produces 3,872 features (from 32 x 11 x 11); the assignment's network has 800 here: did you drop a MaxPool2d layer?"


def test_a_softmax_head_loses_the_architecture_point_with_the_reason(make_context) -> None:
    class Softmax(FunctionalCNN):
        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv2(F.max_pool2d(F.relu(self.conv1(x)), 2))), 2)
            return F.softmax(self.fc(x.flatten(1)), dim=1)

    result = run_check(make_context(Softmax(), reference=CNN()), Spec("architecture_matches", points=2))
    assert (result.status, result.score) == ("failed", 0)
    assert result.message == (
        "your network differs from the assignment's:\n  your network applies Softmax where the assignment has LogSoftmax")


def test_a_functional_network_without_relu_has_no_nonlinearity_even_if_the_source_mentions_one(make_context) -> None:
    class Linear3(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(784, 128), nn.Linear(128, 64), nn.Linear(64, 10)

        def forward(self, x):
            return F.log_softmax(self.fc3(self.fc2(self.fc1(x.flatten(1)))), dim=1)

    ctx = make_context(Linear3(), reference=FeedForward(), source_text="# TODO: x = F.relu(self.fc1(x))")
    result = run_check(ctx, Spec("architecture_matches"))
    assert result.message.startswith("your network has no non-linearity (no ReLU, neither a layer nor an F.relu call)")
