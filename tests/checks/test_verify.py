"""The host holds exported predictions against its own test images and its own run of the exported weights.

Each forgery a student's process can write into the artifacts folder (the probe runs in that process and
can be replaced) is fabricated here as files, read back as the pipeline reads them, and graded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.architecture import describe_layers
from harness.checks import run_check
from harness.checks.verify import UNVERIFIED_NOTE, find_normalisation
from reference.classifiers import CNN
from reference.mistakes import CNNWithoutSecondPool
from tests.checks.conftest import Spec
from tests.checks.fabricate import candidate, context, probe_record

IMAGES = 300
MEAN, STD = 0.1307, 0.3081


@pytest.fixture
def hidden() -> tuple[np.ndarray, np.ndarray]:
    """The grader's evaluation images (uint8, as written for the sandbox) and their hidden labels."""
    generator = np.random.default_rng(7)
    return generator.integers(0, 256, (IMAGES, 28, 28), dtype=np.uint8), np.arange(IMAGES) % 10


def normalised(images: np.ndarray) -> torch.Tensor:
    """The images as the assignment's transform gives them: ToTensor(), Normalize((0.1307,), (0.3081,))."""
    return (torch.from_numpy(images).float().unsqueeze(1) / 255 - MEAN) / STD  # (N, 1, 28, 28)


def perfect(labels: np.ndarray) -> torch.Tensor:
    """Log-probabilities that pick every hidden label: predictions a forger would like to hand in."""
    return torch.log_softmax(torch.nn.functional.one_hot(torch.as_tensor(labels), 10).float() * 10, dim=1)


def run_in(network: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return network.eval()(inputs)


def grade(root, hidden, check: str, *, reference=None, layers=None, **files):
    """Write one model candidate with ``files`` (state, inputs, outputs), read it back, run ``check``.

    The candidate's recorded layers are ``layers``, by default the reference's (the assignment's network).
    """
    images, labels = hidden
    entry = candidate(root, "model", **files)
    entry["modules"] = layers if layers is not None else describe_layers(reference) if reference is not None else []
    ctx = context(root, probe_record(models=[entry]), task_id="cnn", model="model", hidden_images=images,
                  hidden_labels=labels, reference_model=reference)
    return run_check(ctx, Spec(check, min=0.5))


def test_honest_predictions_of_the_assignments_network_are_verified(tmp_path, hidden) -> None:
    images, labels = hidden
    network = CNN()
    inputs = normalised(images)
    result = grade(tmp_path, hidden, "forward_consistent", reference=CNN(), state=network.state_dict(),
                   inputs=inputs, outputs=run_in(network, inputs))
    assert (result.status, result.details) == ("passed", {"agreement": 1.0, "images": IMAGES})
    accuracy = grade(tmp_path, hidden, "test_accuracy", reference=CNN(), state=network.state_dict(),
                     inputs=inputs, outputs=run_in(network, inputs))
    assert accuracy.details["verified"] is True
    assert accuracy.details["note"] == f"outputs verified: the grader's own run of your weights agrees on 100.0% of {IMAGES} test images"


def test_a_ghost_networks_weights_with_another_models_predictions_are_not_believed(tmp_path, hidden) -> None:
    images, labels = hidden
    ghost = CNN()  # the assignment's layers, never trained: its weights do not give the exported predictions
    own_run = run_in(ghost, normalised(images)).argmax(1).numpy()
    accuracy, differ = (own_run == labels).mean(), (own_run != labels).mean()
    files = {"state": ghost.state_dict(), "inputs": normalised(images), "outputs": perfect(labels)}
    result = grade(tmp_path, hidden, "test_accuracy", reference=CNN(), **files)
    assert (result.status, result.score) == ("failed", 0.0)
    assert result.message == (
        "the predictions your notebook exported are not what your network computes on the test images: the grader "
        f"ran the weights it exported in the assignment's network on all {IMAGES} test images, and the predictions "
        f"differ on {differ:.1%} of them (the grader's own run reaches {accuracy:.1%} accuracy)"
    )
    assert result.details["measured"] == pytest.approx(accuracy)  # measured on the grader's own run, not the export
    per_class = grade(tmp_path, hidden, "per_class_accuracy", reference=CNN(), **files)
    assert per_class.status == "failed" and per_class.message.startswith("the predictions your notebook exported are not")
    forward = grade(tmp_path, hidden, "forward_consistent", reference=CNN(), **files)
    assert forward.status == "failed" and forward.message.startswith("the predictions your notebook exported are not")


def test_a_one_row_inputs_file_is_refused(tmp_path, hidden) -> None:
    images, labels = hidden
    network = CNN()
    inputs = normalised(images)
    result = grade(tmp_path, hidden, "test_accuracy", reference=CNN(), state=network.state_dict(), inputs=inputs[:1],
                   outputs=run_in(network, inputs))
    assert (result.status, result.message) == ("failed", (
        f"your notebook exported 1 test image with its predictions; the grader gave it {IMAGES} and expects the first "
        f"{IMAGES} back: the predictions your notebook exported cannot be believed"))


def test_inputs_that_are_not_the_graders_images_are_refused(tmp_path, hidden) -> None:
    images, labels = hidden
    other = np.random.default_rng(8).integers(0, 256, images.shape, dtype=np.uint8)
    result = grade(tmp_path, hidden, "test_accuracy", inputs=normalised(other), outputs=perfect(labels))
    assert (result.status, result.message) == ("failed", (
        "the test images your notebook exported are not the grader's test images (after scaling and normalisation): "
        "the predictions your notebook exported cannot be believed"))


def test_predictions_for_too_few_images_fail(tmp_path, hidden) -> None:
    images, labels = hidden
    result = grade(tmp_path, hidden, "test_accuracy", inputs=normalised(images), outputs=perfect(labels)[:10])
    assert (result.status, result.message) == ("failed", (
        f"your model returned outputs of shape (10, 10) for {IMAGES} images; expected one row of class scores per image"))


def test_predictions_with_nan_fail(tmp_path, hidden) -> None:
    images, labels = hidden
    outputs = perfect(labels)
    outputs[:3, 0] = float("nan")
    result = grade(tmp_path, hidden, "test_accuracy", inputs=normalised(images), outputs=outputs)
    assert (result.status, result.message) == ("failed", (
        f"your model's outputs on 3 of the {IMAGES} test images contain NaN or infinite values: check the training "
        "(a learning rate too high diverges) and the forward pass (a log of 0)"))


def test_predictions_without_weights_for_a_fixed_network_are_not_believed(tmp_path, hidden) -> None:
    images, labels = hidden
    result = grade(tmp_path, hidden, "test_accuracy", reference=CNN(), inputs=normalised(images), outputs=perfect(labels))
    assert (result.status, result.message) == ("failed", (
        "your model's weights were not exported, so the grader cannot check that the predictions your notebook "
        "exported are what your network computes on the test images"))


def test_predictions_of_a_class_the_grader_cannot_rebuild_are_marked_unverified(tmp_path, hidden) -> None:
    images, labels = hidden
    own = CNNWithoutSecondPool()  # the student's own class: its weights do not fit the assignment's network
    result = grade(tmp_path, hidden, "test_accuracy", reference=CNN(), state=own.state_dict(),
                   inputs=normalised(images), outputs=perfect(labels), layers=describe_layers(own))
    assert (result.status, result.score) == ("passed", 1.0)  # graded as usual; scoring holds the point for a TA
    assert (result.details["verified"], result.details["note"]) == (False, UNVERIFIED_NOTE)
    assert UNVERIFIED_NOTE == "outputs not verified: your model's class cannot be rebuilt on the grader"
    assert result.held == (
        "the grader could not rebuild your model to confirm its predictions (the grader has no second run to rebuild "
        "it in)")


REBUILD_FAILED = "no class Net is defined in your code outside the cells that ran it"


def cannot_rebuild(class_name, constructor, state, inputs) -> str:
    """A clean second run that could not build the student's class (what ``Rebuilder`` answers then)."""
    return REBUILD_FAILED


def test_checks_resting_on_predictions_no_rebuild_confirms_hold_their_points_with_the_reason(tmp_path, hidden) -> None:
    """A hand-written record naming a class the definitions lack: its accuracy is measured, and held for a TA."""
    images, labels = hidden
    own = CNNWithoutSecondPool()
    entry = candidate(tmp_path, "model", state=own.state_dict(), inputs=normalised(images), outputs=perfect(labels))
    entry["modules"] = describe_layers(own)
    ctx = context(tmp_path, probe_record(models=[entry]), task_id="cnn", model="model", hidden_images=images,
                  hidden_labels=labels, reference_model=CNN())
    ctx.rebuild = cannot_rebuild
    for check in ("test_accuracy", "per_class_accuracy"):
        result = run_check(ctx, Spec(check, min=0.5))
        assert (result.status, result.score, result.details["threshold"]) == ("passed", 1.0, 0.5)
        assert result.held == f"the grader could not rebuild your model to confirm its predictions ({REBUILD_FAILED})"
    consistent = run_check(ctx, Spec("forward_consistent"))  # nothing recomputed: no free point, held as well
    assert (consistent.status, consistent.details["applicable"], consistent.held) == (
        "passed", False, f"the grader could not rebuild your model to confirm its predictions ({REBUILD_FAILED})")
    worthless = run_check(ctx, Spec("test_accuracy", min=0.5, points=0))  # nothing earned: nothing to hold
    assert (worthless.status, worthless.held) == ("passed", "")


def test_predictions_a_rebuild_confirms_hold_nothing(tmp_path, hidden) -> None:
    images, labels = hidden
    network = CNN()
    inputs = normalised(images)
    result = grade(tmp_path, hidden, "test_accuracy", reference=CNN(), state=network.state_dict(), inputs=inputs,
                   outputs=run_in(network, inputs))
    assert (result.details["verified"], result.held) == (True, "")


def test_architecture_checks_on_an_unverified_record_hold_their_points(make_context, digits) -> None:
    """The architecture checks that believe a record only as far as its predictions hold with them."""
    images, _ = digits
    ctx = make_context(CNN(), reference=CNN(), images=images, fixed_architecture=False)  # the student's own design
    ctx.rebuild = cannot_rebuild
    for spec in (Spec("parameter_count", equals=12_810), Spec("feature_width", layer="Flatten", equals=800)):
        result = run_check(ctx, spec)
        assert (result.status, result.held) == (
            "passed", f"the grader could not rebuild your model to confirm its predictions ({REBUILD_FAILED})")


def test_the_students_normalisation_is_recovered_per_channel() -> None:
    colour = np.random.default_rng(3).integers(0, 256, (20, 64, 64, 3), dtype=np.uint8)  # SIGNS: (N, H, W, C)
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.3])
    inputs = (torch.from_numpy(colour).permute(0, 3, 1, 2).float() / 255 - mean[:, None, None]) / std[:, None, None]
    found = find_normalisation(inputs, colour)
    assert found.scale == pytest.approx((1 / std).tolist(), rel=1e-5)
    assert found.shift == pytest.approx((-mean / std).tolist(), rel=1e-5)
    assert torch.allclose(found.apply(colour), inputs, atol=1e-5)
    flat = torch.from_numpy(colour[:, :, :, 0]).float().reshape(20, -1) / 255  # ToTensor alone, then flattened
    assert find_normalisation(flat, colour[:, :, :, 0]).example_shape == (4096,)


def test_reconstructions_of_images_that_are_not_the_graders_are_refused(tmp_path, hidden) -> None:
    images, _ = hidden
    own = torch.zeros(IMAGES, 1, 28, 28)  # exported "inputs" equal to the exported reconstructions: no error at all
    entry = candidate(tmp_path, "autoencoder", inputs=own, outputs=own)
    ctx = context(tmp_path, probe_record(models=[entry]), task_id="ae", model="autoencoder", hidden_images=images)
    result = run_check(ctx, Spec("reconstruction_error", max=0.05))
    assert (result.status, result.message) == ("failed", (
        "the test images your notebook exported are not the grader's test images (after scaling and normalisation): "
        "the predictions your notebook exported cannot be believed"))
    honest = torch.from_numpy(images).float().unsqueeze(1) / 255  # ToTensor() alone, reconstructed exactly
    entry = candidate(tmp_path / "honest", "autoencoder", inputs=honest, outputs=honest)
    ctx = context(tmp_path / "honest", probe_record(models=[entry]), task_id="ae", model="autoencoder",
                  hidden_images=images)
    result = run_check(ctx, Spec("reconstruction_error", max=0.05))
    assert (result.status, result.held) == ("passed", (
        "the grader could not rebuild your model to confirm its predictions (its weights were not exported)"))


def test_an_autoencoders_outputs_are_compared_value_by_value() -> None:
    from harness.checks.verify import agreement_of

    reconstruction = torch.rand(4, 784)
    nudged = reconstruction.clone()
    nudged[0, :] += 0.01  # one reconstruction off by 0.01 everywhere; its brightest pixel is still the same
    assert agreement_of(nudged, reconstruction, 784) == 0.75
    scores = torch.log_softmax(torch.randn(4, 10), dim=1)
    assert agreement_of(scores.exp(), scores, 784) == 1.0  # probabilities beside log-probabilities pick the same class


def test_a_network_with_a_layer_more_than_the_assignments_is_not_recomputed_in_it(tmp_path, hidden) -> None:
    images, labels = hidden
    network = CNN()
    extra = torch.nn.Sequential(*network.main[:7], torch.nn.ReLU(), *network.main[7:])  # a ReLU after the Flatten
    inputs = normalised(images)
    result = grade(tmp_path, hidden, "test_accuracy", reference=CNN(), state=extra.state_dict(), inputs=inputs,
                   outputs=run_in(extra, inputs), layers=describe_layers(extra))
    assert (result.details["verified"], result.details["note"]) == (False, UNVERIFIED_NOTE)  # weights fit, layers do not


def test_a_network_with_the_references_modules_but_another_computation_is_not_rerun_as_the_reference(
        make_context, digits) -> None:
    images, _ = digits

    class ReLUOnScores(CNN):  # the assignment's modules, one F.relu more: run as the reference, it would disagree
        def forward(self, x):
            return torch.log_softmax(torch.relu(self.main[:-1](x)), dim=1)

    verdict = make_context(ReLUOnScores(), reference=CNN(), images=images).verified_predictions()
    assert (verdict.believed, verdict.verified) == (True, False)


def test_a_hidden_network_called_from_forward_is_still_rerun_as_the_reference(make_context, digits) -> None:
    images, _ = digits
    helper = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.LogSoftmax(dim=1))

    class Hidden(CNN):  # the assignment's modules, never used: a network outside the model computes the outputs
        def forward(self, x):
            return helper(x)

    verdict = make_context(Hidden(), reference=CNN(), images=images).verified_predictions()
    assert (verdict.believed, verdict.verified) == (False, True)
    assert verdict.problem.startswith("the predictions your notebook exported are not what your network computes")
