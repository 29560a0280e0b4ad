"""The adl2024-a2 samples graded end to end: each sample's automatic task scores and the messages a student reads.

The samples (``submissions/make_adl2024_a2_samples.py``): the reference and a correct notebook
written by another hand get every automatic point; ``scaled_formula`` encodes PCA with
dl2025-a2's sqrt(lambda) formula, ``uniform_z`` samples the VAE's latent space with
``torch.rand``, ``colab_only`` starts both notebooks with a Colab-only cell that raises.
"""

from __future__ import annotations

import pytest

from tests.sample_reports import automatic_scores, failed_checks

ASSIGNMENT = "adl2024-a2"
FULL = {"ae": 6.0, "ae-runs": 2.0, "pca": 3.0, "latent-size": 3.0, "vae": 4.0, "vae-samples": 5.0}
"""Points of every automatic task."""
MANUAL = ("ae-runs-comparison", "pca-comparison", "latent-size-discussion", "vae-comparison")

EXPECTED = {
    "reference": FULL,
    "different": FULL,
    # pca_encoding (2 points) fails: the scatter has dl2025-a2's spread.
    "scaled_formula": {**FULL, "pca": 1.0},
    # standard_normal_samples (2 points) fails: z lies in [0, 1).
    "uniform_z": {**FULL, "vae-samples": 3.0},
    # Only the cells that need no import run (1 of 11 in autoencoders.ipynb, 1 of 8 in vae.ipynb); both runs end
    # within their budget, and plot_generated_samples is defined before the cell fails calling it.
    "colab_only": {"ae": 1 + 1 / 11, "ae-runs": 0.0, "pca": 0.0, "latent-size": 0.0, "vae": 1 + 1 / 8, "vae-samples": 1.0},
}


@pytest.fixture(scope="module")
def reports(graded_samples):
    """Every adl2024-a2 sample's report, by student."""
    _, _, reports = graded_samples(ASSIGNMENT)
    return reports






def test_every_sample_is_graded(graded_samples) -> None:
    _, summary, reports = graded_samples(ASSIGNMENT)
    assert sorted(reports) == sorted(EXPECTED)
    assert summary.failed_to_load == 0 and not summary.faults


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_automatic_task_scores(reports, student) -> None:
    assert automatic_scores(reports[student]) == pytest.approx(EXPECTED[student], abs=1e-3)


@pytest.mark.parametrize("student", ["reference", "different"])
def test_correct_notebooks_get_full_automatic_marks(reports, student) -> None:
    report = reports[student]
    assert failed_checks(report) == {}
    assert report.score == pytest.approx(sum(FULL.values()))
    assert {t.task: t.note for t in report.tasks if t.manual} == dict.fromkeys(MANUAL, "not graded yet")


def test_the_other_hand_is_graded_on_its_own_names(reports) -> None:
    ae = next(t for t in reports["different"].tasks if t.task == "ae")
    architecture = next(c for c in ae.checks if c.check == "architecture_matches")
    assert architecture.details["model"] == "graded `autoencoder` (an instance of AE, trained: an optimizer stepped it)"
    vae = next(t for t in reports["different"].tasks if t.task == "vae")
    loss = next(c for c in vae.checks if c.check == "vae_loss_closed_form")
    assert loss.status == "passed"  # vae_loss returns (total, reconstruction, kl): the total is read


def test_the_dl2025_formula_is_named(reports) -> None:
    failures = failed_checks(reports["scaled_formula"])
    assert list(failures) == [("pca", "pca_encoding")]
    message = failures[("pca", "pca_encoding")][0]
    assert "'PCA latent space (equation 1)'" in message
    assert "matches alpha_i = (x - mu) . sqrt(lambda_i) v_i; this assignment asks for alpha_i = (x - mu) . v_i" in message


def test_uniform_latent_samples_are_named(reports) -> None:
    failures = failed_checks(reports["uniform_z"])
    assert list(failures) == [("vae-samples", "standard_normal_samples")]
    message = failures[("vae-samples", "standard_normal_samples")][0]
    assert message.startswith("`z` lies in [0, 1) (means 0.")
    assert message.endswith("uniform draws (torch.rand); sample the prior N(0, I) with torch.randn")


def test_a_failing_first_cell_is_reported_once_per_notebook(reports) -> None:
    failures = failed_checks(reports["colab_only"])
    for task in ("ae", "vae"):
        assert failures[(task, "runs_without_error")][0].startswith(
            # wandb's protobuf brings a `google` namespace package into the environment: only google.colab is missing
            "cell 1 raised ModuleNotFoundError: No module named 'google.colab'; cell 2 raised NameError: name 'transforms' "
            "is not defined"
        )
    assert failures[("ae", "architecture_matches")] == ["no PyTorch model (nn.Module) was found after running your code"]
    assert failures[("pca", "pca_encoding")] == [
        "no 2-D scatter plot was found (your code showed no figures); the task asks for a 2-D scatter of the PCA encoding"
    ]
    assert failures[("vae-samples", "figure_kind")] == ["your code showed no figures (call plt.show() after each plot)"] * 2
    assert failures[("vae", "vae_loss_closed_form")] == [
        "calling your loss_function(recon_x, x, mu, logvar) on a batch of 16 flattened images raised "
        "NameError: name 'F' is not defined"
    ]
