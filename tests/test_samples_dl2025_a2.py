"""The dl2025-a2 samples graded end to end, Part 2 (autoencoders, PCA, VAE) and the total of each sample.

Part 1 (feed-forward and CNN) is covered by tests/test_pipeline.py on the same graded batch. The
Part 2 notebooks come from ``submissions/autoencoder_notebooks.py``: the reference follows the text;
``cnnnet`` is correct but written by another hand; ``softmax_nll`` fits PCA on raw pixels 0..255;
``wrong_flatten`` feeds the autoencoder Part 1's normalised pixels and drops the VAE's KL term;
``syntax_error`` has a latent-size cell that does not parse and no vae.ipynb; ``inline_model`` and
``fails_midway`` hand in Part 1 only.
"""

from __future__ import annotations

import pytest

from tests.sample_reports import automatic_scores, check_result, failed_checks

ASSIGNMENT = "dl2025-a2"
PART1 = {"ff": 9.0, "cnn": 13.0}
PART2 = {"ae": 6.0, "ae-runs": 2.0, "pca": 3.0, "latent-size": 3.0, "vae": 5.0, "vae-samples": 4.0}
"""Points of every automatic task of each part."""
NOTHING = dict.fromkeys(PART2, 0.0)
MANUAL2 = ("ae-description", "ae-runs-comparison", "pca-comparison", "latent-size-discussion", "vae-description",
           "vae-comparison")

EXPECTED_PART2 = {
    "reference": PART2,
    "cnnnet": PART2,
    # pca_encoding (2 points) fails; pca_curve gets half of its 2 points: the right curve on the wrong scale.
    "softmax_nll": {**PART2, "pca": 1.0, "latent-size": 2.0},
    # reconstruction_error (2 points) fails for the autoencoder, vae_loss_closed_form (2 points) for the VAE.
    "wrong_flatten": {**PART2, "ae": 4.0, "vae": 3.0},
    # 1 of the 11 cells fails (no latent-size figure); vae.ipynb is missing.
    "syntax_error": {**NOTHING, "ae": 6 - 1 / 11, "ae-runs": 2.0, "pca": 3.0},
    "inline_model": NOTHING,
    "fails_midway": NOTHING,
}

EXPECTED_TOTAL = {
    "reference": 45.0,
    "cnnnet": 45.0,
    "wrong_flatten": 18.0 + 19.0,
    "syntax_error": 22 - 1 / 7 + 11 - 1 / 11,
    "inline_model": 22.0,
    "fails_midway": 22 - 1 / 7,
}
"""Every sample's total (Part 1 + Part 2) except softmax_nll's, whose Part 1 accuracy varies (see below)."""


@pytest.fixture(scope="module")
def reports(graded_samples):
    """Every dl2025-a2 sample's report, by student."""
    _, _, reports = graded_samples(ASSIGNMENT)
    return reports




def _failures(report, tasks=PART2) -> dict[tuple[str, str], list[str]]:
    return failed_checks(report, tasks)




@pytest.mark.parametrize("student", sorted(EXPECTED_PART2))
def test_part2_task_scores(reports, student) -> None:
    assert automatic_scores(reports[student], PART2) == pytest.approx(EXPECTED_PART2[student], abs=1e-3)


@pytest.mark.parametrize("student", sorted(EXPECTED_TOTAL))
def test_total_scores(reports, student) -> None:
    assert reports[student].score == pytest.approx(EXPECTED_TOTAL[student], abs=1e-3)


def test_the_softmax_sample_loses_part1_accuracy_and_part2_pca_points(reports) -> None:
    report = reports["softmax_nll"]
    part1 = automatic_scores(report, PART1)
    # Softmax fed to NLLLoss: output_kind and loss_choice fail, and whole digits stay unlearnt (per_class_accuracy);
    # its overall accuracy is near what the template's own recipe reaches on the small data, the bar's reference
    assert part1["cnn"] == PART1["cnn"] and part1["ff"] <= PART1["ff"] - 2
    assert report.score == pytest.approx(part1["ff"] + part1["cnn"] + sum(EXPECTED_PART2["softmax_nll"].values()), abs=1e-3)


@pytest.mark.parametrize("student", ["reference", "cnnnet"])
def test_correct_part2_notebooks_get_full_automatic_marks(reports, student) -> None:
    report = reports[student]
    assert _failures(report, set(PART1) | set(PART2)) == {}
    assert {t.task: t.note for t in report.tasks if t.task in MANUAL2} == dict.fromkeys(MANUAL2, "not graded yet")


def test_the_other_hand_is_found_by_what_it_is(reports) -> None:
    report = reports["cnnnet"]
    assert check_result(report, "ae", "architecture_matches").details["model"] == "graded `autoencoder` (an instance of AE, trained: an optimizer stepped it)"
    assert check_result(report, "vae", "vae_loss_closed_form").status == "passed"  # vae_loss(...) returns (total, bce, kl)
    assert check_result(report, "pca", "pca_encoding").status == "passed"  # PCA by np.linalg.eigh
    assert check_result(report, "pca", "figure_kind").status == "passed"  # a 6 x 6 grid of subplots under a suptitle


def test_pca_on_raw_pixels_is_diagnosed(reports) -> None:
    failures = _failures(reports["softmax_nll"])
    assert list(failures) == [("pca", "pca_encoding"), ("latent-size", "pca_curve")]
    [encoding] = failures[("pca", "pca_encoding")]
    assert "in figure 5 (2-D scatter plot, 'PCA latent space (equation 1)') matches alpha_i = (x - mu) . sqrt(lambda_i) v_i " \
        "on pixels 0..255 (not divided by 255); this assignment asks for alpha_i = (x - mu) . sqrt(lambda_i) v_i" in encoding
    [curve] = failures[("latent-size", "pca_curve")]
    assert curve == (
        "the curve 'PCA' in figure 7 (line plot, 'Reconstruction error against dim3') is PCA's per-pixel mean squared "
        "error on pixels scaled to 0..255 (not divided by 255): scale the images to [0, 1] (divide by 255) before "
        "fitting PCA, as the task asks"
    )


def test_normalised_autoencoder_input_and_missing_kl_term(reports) -> None:
    failures = _failures(reports["wrong_flatten"])
    assert list(failures) == [("ae", "reconstruction_error"), ("vae", "vae_loss_closed_form")]
    [reconstruction] = failures[("ae", "reconstruction_error")]
    assert reconstruction.startswith("your model reconstructs unseen images with a mean squared error of ")
    assert "(1.5x the reference's 0.0" in reconstruction
    assert "(normalised) while the outputs stay in [0, 1] (a Sigmoid output); feed the autoencoder pixels in [0, 1]" in reconstruction
    [loss] = failures[("vae", "vae_loss_closed_form")]
    assert loss.startswith("your loss_function returns ")
    assert ": BCE only: the KL divergence term is missing; the loss is " in loss


def test_a_cell_that_does_not_parse_and_a_missing_notebook(reports) -> None:
    failures = _failures(reports["syntax_error"])
    [cell] = failures[("ae", "runs_without_error")]
    assert cell.startswith("cell 11 raised SyntaxError: expected ':'")
    assert failures[("latent-size", "curves_fall")] == [
        "no figure shows 2 curves of at least 5 points (e.g. training and test loss per epoch)"
    ]
    assert failures[("latent-size", "pca_curve")][0].startswith(
        "no line of PCA reconstruction errors against the number of components was found among your 6 figures"
    )
    assert failures[("vae", "runs_without_error")] == [
        "your code could not be run at all: vae.ipynb was not found in your submission "
        "(found: CNNMNIST.ipynb, autoencoders.ipynb, feedForwardMNIST.ipynb)"
    ]


@pytest.mark.parametrize("student", ["inline_model", "fails_midway"])
def test_part1_only_submissions_score_nothing_in_part2(reports, student) -> None:
    failures = _failures(reports[student])
    assert failures[("ae", "runs_without_error")] == [
        "your code could not be run at all: autoencoders.ipynb was not found in your submission "
        "(found: CNNMNIST.ipynb, feedForwardMNIST.ipynb)"
    ]
    assert failures[("vae-samples", "standard_normal_samples")] == [
        "vae.ipynb was not found in your submission (found: CNNMNIST.ipynb, feedForwardMNIST.ipynb)"
    ]
