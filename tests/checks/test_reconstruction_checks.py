"""Autoencoder checks: reconstruction error and comparison, bottleneck width, output shape, the loss used."""

from __future__ import annotations

import pytest
import torch

from harness.checks import run_check
from tests.checks.conftest import Spec
from tests.checks.fabricate import candidate, context, probe_record

IMAGES = torch.rand(100, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def autoencoder_context(root, noise: float, *, task_id: str = "ae", **fields):
    """A run whose model reconstructs IMAGES off by ``noise`` everywhere (MSE = noise^2, L1 = noise)."""
    noisy = IMAGES + noise
    shapes = [("enc.0", "Conv2d", [2, 16, 14, 14]), ("enc.1", "Linear", [2, 12]), ("dec.0", "Linear", [2, 784]),
              ("dec.1", "Unflatten", [2, 1, 28, 28])]
    model = candidate(root, "autoencoder", {"w": torch.ones(3)}, layer_shapes=shapes, output_shape=[2, 1, 28, 28],
                      inputs=IMAGES, outputs=noisy)
    return context(root, probe_record(models=[model]), task_id=task_id, model="autoencoder", **fields)


def test_reconstruction_error_absolute_and_relative_bars(tmp_path) -> None:
    ctx = autoencoder_context(tmp_path, 0.2, reference_metrics={"reconstruction_error": 0.02})
    result = run_check(ctx, Spec("reconstruction_error", max=0.05))
    assert result.status == "passed"
    assert result.details["measured"] == pytest.approx(0.04, rel=1e-4)
    failed = run_check(ctx, Spec("reconstruction_error", params={"max_ratio": 1.2}))
    assert failed.status == "failed"
    assert failed.message.startswith("your model reconstructs unseen images with a mean squared error of 0.04 per pixel")
    assert "it must be at most 0.024 (1.2x the reference's 0.02)" in failed.message
    l1 = run_check(ctx, Spec("reconstruction_error", max=0.1, params={"metric": "l1"}))
    assert l1.status == "failed" and "mean absolute (L1) error of 0.2 per pixel" in l1.message


def test_reconstruction_error_of_a_model_whose_output_is_not_an_image(tmp_path) -> None:
    model = candidate(tmp_path, "classifier", {"w": torch.ones(3)}, inputs=IMAGES, outputs=torch.zeros(100, 10))
    ctx = context(tmp_path, probe_record(models=[model]), model="classifier")
    result = run_check(ctx, Spec("reconstruction_error", max=0.05))
    assert result.status == "failed"
    assert result.message == (
        "your model returns 10 values per image for inputs of 784 values: an autoencoder's output must have the input's shape"
    )


def test_reconstruction_error_without_a_bar_or_calibration_is_a_harness_error(tmp_path) -> None:
    ctx = autoencoder_context(tmp_path, 0.1)
    assert "needs max or params.max_ratio" in run_check(ctx, Spec("reconstruction_error")).message
    uncalibrated = run_check(ctx, Spec("reconstruction_error", params={"max_ratio": 2}))
    assert uncalibrated.status == "error"
    assert "no calibrated reference value 'reconstruction_error'" in uncalibrated.message
    assert uncalibrated.message.endswith("grade with the reference submission (--reference DIR, or "
                                         "submissions/<assignment>/reference) to calibrate relative bars")


def test_reconstruction_compare_worse_than_the_autoencoder(tmp_path) -> None:
    autoencoder = autoencoder_context(tmp_path / "ae", 0.1, task_id="ae")
    worse = autoencoder_context(tmp_path / "clf-dec", 0.3, task_id="clf-dec", related={"ae": autoencoder})
    spec = Spec("reconstruction_compare", params={"task": "ae", "relation": "worse", "metric": "l1"})
    assert run_check(worse, spec).status == "passed"
    better = autoencoder_context(tmp_path / "clf-dec2", 0.05, task_id="clf-dec", related={"ae": autoencoder})
    result = run_check(better, spec)
    assert result.status == "failed"
    assert result.message.startswith(
        "this task's model reconstructs unseen images with a mean absolute (L1) error of 0.05, the model of task 'ae' "
        "with 0.1; it should reconstruct worse than that"
    )


def test_reconstruction_compare_needs_the_other_task_graded_first(tmp_path) -> None:
    ctx = autoencoder_context(tmp_path, 0.1, task_id="clf-dec")
    result = run_check(ctx, Spec("reconstruction_compare", params={"task": "ae", "relation": "worse"}))
    assert result.status == "error"
    assert "task 'ae' was not graded before task 'clf-dec'" in result.message


def test_bottleneck_width_bounds_and_same_as_task(tmp_path) -> None:
    ctx = autoencoder_context(tmp_path / "a", 0.1)
    assert run_check(ctx, Spec("bottleneck_width", min=8, max=16)).status == "passed"
    too_wide = run_check(ctx, Spec("bottleneck_width", max=10))
    assert too_wide.message == (
        "your model's narrowest layer, Linear (enc.1), has 12 features per image; the task asks for a bottleneck "
        "of at most 10 (a latent space of around that size)"
    )
    other = candidate(tmp_path / "b", "decoder_model", {"w": torch.ones(1)},
                      layer_shapes=[("0", "Linear", [2, 16]), ("1", "Linear", [2, 784])])
    later = context(tmp_path / "b", probe_record(models=[other]), model="decoder_model", related={"ae": ctx})
    result = run_check(later, Spec("bottleneck_width", params={"same_as_task": "ae"}))
    assert result.status == "failed"
    assert result.message == (
        "your model's narrowest layer, Linear (0), has 16 features per image; the model of task 'ae' has 12 at "
        "Linear (enc.1): the task asks for the same latent size"
    )


def test_output_shape(tmp_path) -> None:
    ctx = autoencoder_context(tmp_path / "a", 0.1)
    assert run_check(ctx, Spec("output_shape", params={"shape": [1, 28, 28]})).status == "passed"
    flat = candidate(tmp_path / "b", "flat", {"w": torch.ones(1)}, output_shape=[2, 784])
    result = run_check(context(tmp_path / "b", probe_record(models=[flat]), model="flat"),
                       Spec("output_shape", params={"shape": [1, 28, 28]}))
    assert result.message == (
        "your model returns 784 values per image; the task asks for 1 x 28 x 28: reshape the decoder's output "
        "(x.view(-1, 1, 28, 28))"
    )


def test_loss_used_from_the_namespace_or_the_source(tmp_path) -> None:
    probe = probe_record(losses=[{"name": "criterion", "type": "L1Loss"}])
    assert run_check(context(tmp_path / "a", probe), Spec("loss_used", equals="L1Loss")).status == "passed"
    functional = context(tmp_path / "b", probe_record(), source_text="loss = F.l1_loss(recon, x)")
    assert run_check(functional, Spec("loss_used", equals="L1Loss")).status == "passed"
    by_hand = context(tmp_path / "c", probe_record(), source_text="loss = torch.abs(recon - x).mean()")
    assert run_check(by_hand, Spec("loss_used", equals="L1Loss")).status == "passed"
    mse = context(tmp_path / "d", probe_record(losses=[{"name": "criterion", "type": "MSELoss"}]))
    result = run_check(mse, Spec("loss_used", equals="L1Loss"))
    assert result.message == "your code uses MSELoss; the task asks for L1Loss: use nn.L1Loss() or F.l1_loss"
    nothing = run_check(context(tmp_path / "e", probe_record()), Spec("loss_used", equals="L1Loss"))
    assert nothing.message == "no loss function was found in your code; the task asks for L1Loss: use nn.L1Loss() or F.l1_loss"


def test_reconstruction_error_of_normalised_inputs_says_why(tmp_path) -> None:
    normalised = (IMAGES - 0.1307) / 0.3081  # Normalize((0.1307,), (0.3081,)): -0.42 .. 2.82
    model = candidate(tmp_path, "model", {"w": torch.ones(3)}, inputs=normalised, outputs=torch.sigmoid(normalised))
    ctx = context(tmp_path, probe_record(models=[model]), model="model")
    result = run_check(ctx, Spec("reconstruction_error", max=0.05))
    assert result.status == "failed"
    assert "(a Sigmoid output); feed the autoencoder pixels in [0, 1] (transforms.ToTensor() alone)" in result.message


def test_reconstructions_that_ignore_the_input_point_at_the_latent_code(tmp_path) -> None:
    mean_image = IMAGES.mean(0, keepdim=True).expand_as(IMAGES)  # what a decoder of an all-zero code returns
    model = candidate(tmp_path, "model", {"w": torch.ones(3)}, inputs=IMAGES, outputs=mean_image.clone())
    ctx = context(tmp_path, probe_record(models=[model]), model="model")
    result = run_check(ctx, Spec("reconstruction_error", max=0.01))
    assert result.status == "failed"
    assert "as if the latent code carried nothing: check that it is not switched off (a ReLU on the code" in result.message


# -- the bar sits below what predicting the mean image scores ----------------------------------------------------


def _rubric_reconstruction_entries() -> list[tuple[str, str, object]]:
    """Every reconstruction_error entry of every rubric: (rubric, task, entry)."""
    from pathlib import Path

    from harness.checks import known_checks
    from harness.rubric import load_rubric

    entries = []
    for path in sorted((Path(__file__).resolve().parents[2] / "rubrics").glob("*.yaml")):
        rubric = load_rubric(path, known_checks())
        for task in rubric.tasks:
            entries += [(path.stem, task.id, spec) for spec in task.checks if spec.check == "reconstruction_error"]
    return entries


def _mean_image_context(root, train: torch.Tensor, test: torch.Tensor, reference: float):
    """A "model" that outputs the mean training image for every test image; the reference calibrated at ``reference``."""
    mean = train.mean(0, keepdim=True).expand_as(test)  # (N, 1, 28, 28), the same image for every input
    model = candidate(root, "constant", {"w": torch.ones(1)}, output_shape=[2, 1, 28, 28], inputs=test, outputs=mean)
    return context(root, probe_record(models=[model]), task_id="ae", model="constant",
                   reference_metrics={"reconstruction_error": reference})


@pytest.mark.parametrize("scale", ["unit", "symmetric"])
def test_a_mean_image_model_fails_every_reconstruction_check_of_every_rubric(tmp_path, small_data, scale) -> None:
    """On the grading data, in either pixel scale, even where the reference's calibration would let it pass."""
    from harness.checks.reconstruction import mean_image_error
    from harness.data import load_split
    from reference import training

    train = training.prepare_images(load_split(small_data, "mnist", "train")[0][:2000], scale)
    test = training.prepare_images(load_split(small_data, "mnist", "hidden")[0][:500], scale)
    entries = _rubric_reconstruction_entries()
    assert {rubric for rubric, _, _ in entries} == {"adl2024-a2", "dl2025-a2", "idl-ex2", "mle-sheet06"}
    for k, (rubric, task, spec) in enumerate(entries):
        metric = spec.params.get("metric", "mse")
        baseline = mean_image_error(test.flatten(1), metric)
        # a reference no better than the mean image: max_ratio alone would pass the constant model
        ctx = _mean_image_context(tmp_path / str(k), train, test, reference=baseline)
        result = run_check(ctx, spec)
        assert result.status == "failed", (rubric, task, result.message)
        assert result.details["capped_by_mean_image"] and result.details["mean_image"] == pytest.approx(baseline, rel=1e-6)
        assert f", just below the {baseline:.4g} that predicting the mean image for every input scores: a model must " \
            "reconstruct each image better than that: your reconstructions hardly differ from one image to the next" in result.message


def test_the_mean_image_bar_only_ever_lowers_the_rubrics_bar(tmp_path) -> None:
    ctx = autoencoder_context(tmp_path, 0.2, reference_metrics={"reconstruction_error": 0.02})
    result = run_check(ctx, Spec("reconstruction_error", params={"max_ratio": 1.5}))
    assert result.details["threshold"] == pytest.approx(0.03) and "capped_by_mean_image" not in result.details
    assert result.details["mean_image"] == pytest.approx(1 / 12, rel=0.05)  # uniform pixels: variance 1/12


def test_the_mean_image_error_is_the_best_any_constant_does() -> None:
    from harness.checks.reconstruction import mean_image_error

    images = torch.rand(300, 784, generator=torch.Generator().manual_seed(1)) ** 3  # skewed, like ink on paper
    for metric, error in (("mse", lambda d: d.pow(2).mean()), ("l1", lambda d: d.abs().mean())):
        best = mean_image_error(images, metric)
        for constant in (images.mean(0), images.median(0).values, torch.zeros(784), torch.full((784,), 0.1)):
            assert float(error(images - constant)) >= best - 1e-6
