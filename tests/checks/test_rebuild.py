"""A second, clean sandboxed process builds the student's own class again and must reproduce the exported outputs.

The student's definitions (never the cells that ran them) are taken from the notebook on the host, the class
is built with the constructor arguments the construction hook recorded, the exported weights are loaded and
the host's test images run through it; only predictions that agree with that run are believed.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from harness.architecture import describe_layers
from harness.checks import run_check
from harness.checks.rebuild import Rebuilder, definitions
from harness.checks.verify import UNVERIFIED_NOTE
from harness.models import Limits, Submission
from harness.probes import tracking
from harness.sandbox import make_sandbox
from reference.classifiers import CNN
from tests.checks.conftest import Spec
from tests.checks.fabricate import candidate, context, probe_record
from tests.checks.test_verify import normalised, perfect

IMAGES = 300

IMPORTS = "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n%matplotlib inline"
OWN_CLASS = '''
HIDDEN = 32

class Net(nn.Module):
    """A student's own network: functional activations, a constructor argument."""

    def __init__(self, hidden, *, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.fc1 = nn.Linear(8 * 13 * 13, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return F.log_softmax(self.fc2(F.relu(self.fc1(x.flatten(1)))), dim=1)
'''
TRAINING = "model = Net(HIDDEN)\nfor epoch in range(2):\n    train(model)  # never run by the rebuild"
GHOST = '''
class Ghost(nn.Module):
    """The assignment's layers and a weight-free layer more, never trained: a forger's stand-in."""

    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(800, 10), nn.LogSoftmax(dim=1), nn.Identity(),
        )

    def forward(self, x):
        return self.main(x)
'''
NEEDS_THE_RUN = '''
width = len(train_loader.dataset.classes)  # computed by the run: the definitions alone cannot build the class

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, width)

    def forward(self, x):
        return self.fc(x.flatten(1))
'''


NESTED = '''
class Encoder(nn.Module):
    """A student's encoder, handed to the classifier built on it (idl-ex2's Classifier(encoder))."""

    def __init__(self, latent):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.fc = nn.Linear(8 * 13 * 13, latent)

    def forward(self, x):
        return self.fc(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))


class Classifier(nn.Module):
    def __init__(self, encoder, latent, classes=10):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(latent, classes))

    def forward(self, x):
        return self.head(self.encoder(x))
'''


@pytest.fixture
def hidden() -> tuple[np.ndarray, np.ndarray]:
    """The grader's evaluation images (uint8) and their hidden labels."""
    generator = np.random.default_rng(11)
    return generator.integers(0, 256, (IMAGES, 28, 28), dtype=np.uint8), np.arange(IMAGES) % 10


def notebook_submission(tmp_path, *cells: str) -> Submission:
    """A one-notebook submission with ``cells`` as its code cells."""
    import nbformat

    root = tmp_path / "submission"
    root.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), str(root / "cnn.ipynb"))
    return Submission(student="s", source=root / "cnn.ipynb", root=root, files=("cnn.ipynb",), kind="notebook",
                      content_hash="0" * 64)


def defined(*cells: str) -> dict:
    """The namespace the cells define (how the test makes the student's network on the host)."""
    namespace: dict = {}
    exec(definitions(list(cells)), namespace)  # test code: the cells are the test's own
    return namespace


def grade(tmp_path, hidden, submission, class_name, constructor, network, outputs, check="test_accuracy"):
    """The check's result for a model of ``class_name`` whose run exported ``network``'s weights and ``outputs``."""
    images, labels = hidden
    inputs = normalised(images)
    entry = candidate(tmp_path / "artifacts", "model", network.state_dict(), inputs=inputs, outputs=outputs)
    entry.update(class_name=class_name, modules=describe_layers(network))
    if constructor is not None:
        entry["constructor"] = constructor
    rebuild = Rebuilder(make_sandbox(), submission, "cnn.ipynb", tmp_path / "rebuild", Limits(wall_s=120))
    ctx = context(tmp_path / "artifacts", probe_record(models=[entry]), task_id="cnn", model="model",
                  hidden_images=images, hidden_labels=labels, reference_model=CNN(), rebuild=rebuild)
    return run_check(ctx, Spec(check, min=0.05))


def test_definitions_keep_imports_classes_functions_and_constants_only() -> None:
    cells = [IMPORTS, "def train(model):\n    pass\nHIDDEN: int = 32\nrate = 10 ** -3", TRAINING,
             "if __name__ == '__main__':\n    main()", "print('unclosed'", "SIZES = (1, 2)\nnet = nn.Linear(1, 1)"]
    assert definitions(cells) == (
        "import torch\n\nfrom torch import nn\n\nimport torch.nn.functional as F\n\n"
        "def train(model):\n    pass\n\nHIDDEN: int = 32\n\nSIZES = (1, 2)\n"
    )


def test_plain_constructor_arguments_are_recorded_and_others_are_not() -> None:
    namespace = defined(IMPORTS, OWN_CLASS)

    class Wraps(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

    tracker = tracking.install()
    try:
        own = namespace["Net"](16, classes=4)
        Wraps(nn.Linear(2, 2))
        plain = nn.Linear(3, 2)
    finally:
        tracking.stop()
    arguments = {b.class_name: b.arguments for b in tracker.built if b.module is not None}
    assert arguments["Net"] == {"args": [16], "kwargs": {"classes": 4}} and own.fc2.out_features == 4
    assert arguments["Wraps"] == {"args": [{"__gradebench_module__": {  # a module is built first, as recorded
        "class_name": "Linear", "library": "torch.nn", "args": [2, 2, True, None, None], "kwargs": {}}}], "kwargs": {}}
    assert arguments["Linear"] == {"args": [3, 2, True, None, None], "kwargs": {}}  # every parameter, in order
    assert plain.in_features == 3


def test_an_honest_students_own_class_is_verified_and_keeps_its_score(tmp_path, hidden) -> None:
    images, labels = hidden
    # an optional package the grader lacks does not stop the class's definition
    submission = notebook_submission(tmp_path, IMPORTS, "import wandb_not_installed", OWN_CLASS, TRAINING)
    network = defined(IMPORTS, OWN_CLASS)["Net"](32)
    with torch.inference_mode():
        outputs = network.eval()(normalised(images))
    result = grade(tmp_path, hidden, submission, "Net", {"args": [32], "kwargs": {}}, network, outputs)
    assert result.status == "passed" and result.details["verified"] is True
    assert result.details["note"] == (
        "outputs verified: a second, clean run of your class with the weights your notebook exported agrees on "
        f"100.0% of {IMAGES} test images")
    assert result.details["measured"] == pytest.approx((outputs.argmax(1).numpy() == labels).mean())


def test_a_ghost_with_a_weight_free_layer_more_gains_no_accuracy(tmp_path, hidden) -> None:
    """A forged record: the ghost's weights (never trained), with another model's predictions. The ghost's layers
    are not the assignment's (an Identity more), so the host cannot run it as the reference: the clean rebuild can."""
    images, labels = hidden
    submission = notebook_submission(tmp_path, IMPORTS, OWN_CLASS, TRAINING, GHOST)
    ghost = defined(IMPORTS, GHOST)["Ghost"]()
    with torch.inference_mode():
        own_run = ghost.eval()(normalised(images)).argmax(1).numpy()
    result = grade(tmp_path, hidden, submission, "Ghost", {"args": [], "kwargs": {}}, ghost, perfect(labels))
    assert (result.status, result.score) == ("failed", 0.0)
    assert result.message == (
        "the predictions your notebook exported are not what your network computes on the test images: the grader "
        "built your class again in a clean process from your definitions, loaded the weights your notebook exported "
        f"and ran it on all {IMAGES} test images, and the predictions differ on {(own_run != labels).mean():.1%} of "
        f"them (the grader's own run reaches {(own_run == labels).mean():.1%} accuracy)"
    )
    assert result.details["measured"] == pytest.approx((own_run == labels).mean())


def test_a_class_that_needs_the_run_stays_unverified_and_says_why(tmp_path, hidden) -> None:
    images, labels = hidden
    submission = notebook_submission(tmp_path, IMPORTS, NEEDS_THE_RUN, "model = Net()")
    network = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    result = grade(tmp_path, hidden, submission, "Net", {"args": [], "kwargs": {}}, network, perfect(labels))
    assert result.status == "passed" and result.details["verified"] is False
    assert result.details["note"] == (
        f"{UNVERIFIED_NOTE} (Net(...) fails on its own (NameError: name 'width' is not defined))")


@pytest.mark.parametrize("imports, building", [
    # idl-ex2's reference keeps its classes in common.py
    ("from common import Net", TRAINING),
    # idl-ex2's odd_layout: main.py imports trainers that import the networks; the definitions never name Net
    ("import common as helpers", "model = helpers.Net(32)"),
], ids=["from-import", "module-import"])
def test_a_class_defined_in_a_helper_module_beside_the_notebook_is_rebuilt(tmp_path, hidden, imports, building) -> None:
    """The rebuild imports the helper module from the notebook's folder, as the run did, finds the one class of that
    name the submission's own modules define, and verifies the predictions: no points held."""
    images, labels = hidden
    submission = notebook_submission(tmp_path, IMPORTS, imports, building)
    (submission.root / "common.py").write_text(IMPORTS.replace("%matplotlib inline", "") + OWN_CLASS, encoding="utf-8")
    submission = replace(submission, files=("cnn.ipynb", "common.py"))
    network = defined(IMPORTS, OWN_CLASS)["Net"](32)
    with torch.inference_mode():
        outputs = network.eval()(normalised(images))
    result = grade(tmp_path, hidden, submission, "Net", {"args": [32], "kwargs": {}}, network, outputs)
    assert (result.status, result.details["verified"], result.held) == ("passed", True, "")


def test_a_class_the_definitions_do_not_define_stays_unverified(tmp_path, hidden) -> None:
    images, labels = hidden
    submission = notebook_submission(tmp_path, IMPORTS, "from helpers_not_handed_in import Net", TRAINING)
    network = defined(IMPORTS, OWN_CLASS)["Net"](32)
    result = grade(tmp_path, hidden, submission, "Net", {"args": [32], "kwargs": {}}, network, perfect(labels))
    assert result.details["verified"] is False
    assert result.details["note"] == (
        f"{UNVERIFIED_NOTE} (no class Net is defined in your code outside the cells that ran it (`from "
        "helpers_not_handed_in import Net` failed: ModuleNotFoundError: No module named 'helpers_not_handed_in'))")


def test_a_random_forward_pass_stays_unverified(tmp_path, hidden) -> None:
    """A VAE that samples its code in evaluation mode too: no second run can reproduce the exported values, so they
    are neither refused nor verified."""
    images, labels = hidden
    sampling = OWN_CLASS.replace("x.flatten(1)", "(x + torch.randn_like(x)).flatten(1)")  # noise in eval mode too
    submission = notebook_submission(tmp_path, IMPORTS, sampling, TRAINING)
    network = defined(IMPORTS, sampling)["Net"](32)
    with torch.inference_mode():
        outputs = network.eval()(normalised(images))
    result = grade(tmp_path, hidden, submission, "Net", {"args": [32], "kwargs": {}}, network, outputs)
    assert (result.status, result.details["verified"]) == ("passed", False)
    assert result.details["note"] == (
        f"{UNVERIFIED_NOTE} (its forward pass is random (two runs on the same test images differ), so no run can "
        "reproduce its outputs)")


def test_without_a_constructor_record_the_class_is_built_without_arguments(tmp_path, hidden) -> None:
    """A record that leaves the constructor out gains nothing when the class needs no arguments; when it needs
    some, the predictions stay unverified and the note says why."""
    images, labels = hidden
    submission = notebook_submission(tmp_path, IMPORTS, OWN_CLASS, TRAINING, GHOST)
    ghost = defined(IMPORTS, GHOST)["Ghost"]()
    forged = grade(tmp_path / "ghost", hidden, submission, "Ghost", None, ghost, perfect(labels))
    assert (forged.status, forged.details["verified"]) == ("failed", True)
    network = defined(IMPORTS, OWN_CLASS)["Net"](32)
    result = grade(tmp_path / "net", hidden, submission, "Net", None, network, perfect(labels))
    assert result.details["verified"] is False
    assert result.details["note"] == (
        f"{UNVERIFIED_NOTE} (its constructor's arguments were not plain values (or modules built from plain values) "
        "the grader could record, and Net(...) fails on its own (TypeError: Net.__init__() missing 1 required "
        "positional argument: 'hidden'))")


def built_and_recorded(namespace: dict, construction: str) -> tuple[nn.Module, dict]:
    """The model ``construction`` builds (test code, run here) and its constructor record as probe.json carries it."""
    tracker = tracking.install()
    try:
        model = eval(construction, namespace)  # the test's own line
    finally:
        tracking.stop()
    built = next(b for b in tracker.built if b.module is model)
    return model, json.loads(json.dumps(built.arguments))


@pytest.mark.parametrize("construction", [
    "Classifier(Encoder(12), 12)",
    "Classifier(nn.Sequential(nn.Flatten(), nn.Linear(784, 12)), latent=12)",  # torch.nn's own, passed in
])
def test_a_classifier_built_on_an_encoder_is_rebuilt_and_verified(tmp_path, hidden, construction) -> None:
    """The rebuild builds the encoder first, passes it in, and loads the exported weights, the encoder's among
    them: predictions of a trained encoder (weights no new one starts with) are verified, nothing is held."""
    images, labels = hidden
    submission = notebook_submission(tmp_path, IMPORTS, NESTED, f"classifier = {construction}\ntrain(classifier)")
    network, constructor = built_and_recorded(defined(IMPORTS, NESTED), construction)
    with torch.no_grad():
        for parameter in network.encoder.parameters():
            parameter.add_(torch.randn_like(parameter))  # the run trained it: a new encoder's weights differ
        outputs = network.eval()(normalised(images))
    result = grade(tmp_path, hidden, submission, "Classifier", constructor, network, outputs)
    assert (result.status, result.details["verified"], result.held) == ("passed", True, "")
    assert result.details["note"] == (
        "outputs verified: a second, clean run of your class with the weights your notebook exported agrees on "
        f"100.0% of {IMAGES} test images")


def test_a_nested_models_predictions_from_other_weights_are_refused(tmp_path, hidden) -> None:
    """A forged record: the exported weights are an untrained classifier's, the predictions the hidden labels. The
    rebuilt Classifier(Encoder(12)) computes what those weights compute, not what the record claims."""
    images, labels = hidden
    submission = notebook_submission(tmp_path, IMPORTS, NESTED, "classifier = Classifier(Encoder(12), 12)")
    network, constructor = built_and_recorded(defined(IMPORTS, NESTED), "Classifier(Encoder(12), 12)")
    with torch.inference_mode():
        own_run = network.eval()(normalised(images)).argmax(1).numpy()
    result = grade(tmp_path, hidden, submission, "Classifier", constructor, network, perfect(labels))
    assert (result.status, result.score, result.details["verified"]) == ("failed", 0.0, True)
    assert result.message.startswith(
        "the predictions your notebook exported are not what your network computes on the test images: the grader "
        "built your class again in a clean process from your definitions")
    assert result.details["measured"] == pytest.approx((own_run == labels).mean())


def test_an_encoder_the_definitions_do_not_define_leaves_the_predictions_unverified(tmp_path, hidden) -> None:
    """The encoder's class came from a module not handed in: the note names the class the rebuild lacked."""
    images, labels = hidden
    classifier_only = NESTED.split("class Classifier")[0].replace("Encoder", "Unused")
    classifier_only += "from encoders_not_handed_in import Encoder\n\nclass Classifier"
    classifier_only += NESTED.split("class Classifier")[1]
    submission = notebook_submission(tmp_path, IMPORTS, classifier_only, "classifier = Classifier(Encoder(12), 12)")
    network, constructor = built_and_recorded(defined(IMPORTS, NESTED), "Classifier(Encoder(12), 12)")
    result = grade(tmp_path, hidden, submission, "Classifier", constructor, network, perfect(labels))
    assert result.details["verified"] is False
    assert result.details["note"] == (
        f"{UNVERIFIED_NOTE} (no class Encoder is defined in your code outside the cells that ran it (`from "
        "encoders_not_handed_in import Encoder` failed: ModuleNotFoundError: No module named "
        "'encoders_not_handed_in'))")




@pytest.mark.parametrize("honest", [True, False], ids=["trained", "forged"])
def test_a_network_built_as_torchs_own_sequential_is_rebuilt_from_torch(tmp_path, hidden, honest) -> None:
    """``model = nn.Sequential(...)`` with layers other than the assignment's: the top-level class is torch.nn's, not
    one of the student's definitions. The clean rebuild builds it from torch with its recorded layers and runs the
    exported weights: a trained one's predictions are verified (nothing held), another model's are refused."""
    images, labels = hidden
    construction = "nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))"
    submission = notebook_submission(tmp_path, IMPORTS, f"model = {construction}\ntrain(model)")
    network, constructor = built_and_recorded(defined(IMPORTS), construction)
    with torch.inference_mode():
        own = network.eval()(normalised(images))
    outputs = own if honest else perfect(labels)
    result = grade(tmp_path, hidden, submission, "Sequential", constructor, network, outputs)
    assert (result.details["verified"], result.held) == (True, "")
    if honest:
        assert result.status == "passed"
        assert result.details["note"] == (
            "outputs verified: a second, clean run of your class with the weights your notebook exported agrees on "
            f"100.0% of {IMAGES} test images")
    else:
        own_run = own.argmax(1).numpy()
        assert (result.status, result.score) == ("failed", 0.0)
        assert result.message.endswith(
            f"and the predictions differ on {(own_run != labels).mean():.1%} of them (the grader's own run reaches "
            f"{(own_run == labels).mean():.1%} accuracy)")
