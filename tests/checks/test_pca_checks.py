"""PCA checks against the host's own PCA of the prepared data: error curve, 2-D encoding, linear autoencoder subspace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.checks import run_check
from harness.data import load_split
from reference.pca import encode, fit_pca, reconstruction_errors, scale_pixels
from tests.checks.conftest import Spec
from tests.checks.fabricate import axes, candidate, context, figure, line, probe_record, scatter

KS = list(range(2, 21))


@pytest.fixture(scope="module")
def mnist(small_data):
    """Scaled public train and test images of the small prepared MNIST, and PCA fitted on the train images."""
    train = scale_pixels(load_split(small_data, "mnist", "train")[0])
    test = scale_pixels(load_split(small_data, "mnist", "test")[0])
    return train, test, fit_pca(train, 20)


@pytest.fixture(scope="module")
def curve(mnist):
    """PCA's per-pixel reconstruction MSE of the test images for 2..20 components, as a student computes it."""
    train, test, _ = mnist
    errors = reconstruction_errors(train, test, KS)
    return np.array([errors[k] for k in KS])


def curve_context(root, data, y, x=KS, label="PCA"):
    path = figure(root, 0, axes(title="Reconstruction error", lines=[line("autoencoder", np.linspace(0.06, 0.03, 19), x),
                                                                     line(label, y, x)]))
    return context(root, probe_record(figures=[path]), data_dir=data)


def test_pca_curve_in_any_usual_unit(tmp_path, small_data, curve) -> None:
    spec = Spec("pca_curve", params={"dataset": "mnist", "tolerance": 0.15})
    for n, (y, x) in enumerate([(curve, KS), (784 * curve, KS), (np.sqrt(curve), KS), (curve, list(range(19)))]):
        result = run_check(curve_context(tmp_path / str(n), small_data, y, x), spec)
        assert result.status == "passed", (n, result.message)


def test_pca_curve_on_pixels_0_to_255_gets_half_with_the_diagnosis(tmp_path, small_data, curve) -> None:
    result = run_check(curve_context(tmp_path, small_data, 255**2 * curve),
                       Spec("pca_curve", params={"dataset": "mnist"}, points=2))
    assert (result.status, result.score) == ("failed", 1.0)
    assert result.message == (
        "the curve 'PCA' in figure 1 (line plot, 'Reconstruction error') is PCA's per-pixel mean squared error on "
        "pixels scaled to 0..255 (not divided by 255): scale the images to [0, 1] (divide by 255) before fitting PCA, "
        "as the task asks"
    )


def test_pca_curve_that_is_something_else_fails(tmp_path, small_data, curve) -> None:
    wrong = curve[0] * np.ones(len(KS)) - np.linspace(0, 0.001, len(KS))  # nearly flat: not PCA's curve
    result = run_check(curve_context(tmp_path, small_data, wrong), Spec("pca_curve", params={"dataset": "mnist"}))
    assert result.status == "failed" and result.score == 0
    assert result.message.startswith("the curve 'PCA' in figure 1 (line plot, 'Reconstruction error') does not follow "
                                     "PCA's reconstruction error: expected a per-pixel MSE from ")
    none = context(tmp_path / "none", probe_record(), data_dir=small_data)
    assert run_check(none, Spec("pca_curve")).message.startswith(
        "no line of PCA reconstruction errors against the number of components was found (your code showed no figures)"
    )


def encoding_context(root, data, points, title="PCA of MNIST"):
    labels = np.arange(len(points)) % 10
    collections = [scatter(str(c), points[labels == c]) for c in range(10)]  # one scatter per digit, as students do
    return context(root, probe_record(figures=[figure(root, 0, axes(title=title, scatters=collections))]), data_dir=data)


def test_pca_encoding_of_the_assignments_formula_passes(tmp_path, small_data, mnist) -> None:
    _, test, pca = mnist
    for formula in ("dl2025", "adl2024"):
        points = encode(pca, test, formula)[:, :2]
        ctx = encoding_context(tmp_path / formula, small_data, points)
        assert run_check(ctx, Spec("pca_encoding", params={"formula": formula, "dataset": "mnist"})).status == "passed"


def test_pca_encoding_names_the_formula_it_matches_instead(tmp_path, small_data, mnist) -> None:
    _, test, pca = mnist
    unscaled = encode(pca, test, "adl2024")[:, :2]
    result = run_check(encoding_context(tmp_path, small_data, unscaled),
                       Spec("pca_encoding", params={"formula": "dl2025", "dataset": "mnist"}))
    std = unscaled.std(0)
    expected = std * np.sqrt(pca.explained_variance_[:2])
    assert result.status == "failed"
    assert result.message == (
        f"your PCA scatter's spread (std {std[0]:.3g}, {std[1]:.3g}) in figure 1 (2-D scatter plot, 'PCA of MNIST') "
        "matches alpha_i = (x - mu) . v_i (unscaled); this assignment asks for alpha_i = (x - mu) . sqrt(lambda_i) v_i "
        f"(expected std {expected[0]:.3g}, {expected[1]:.3g})"
    )
    raw = run_check(encoding_context(tmp_path / "raw", small_data, 255 * unscaled),
                    Spec("pca_encoding", params={"formula": "adl2024", "dataset": "mnist"}))
    assert "matches alpha_i = (x - mu) . v_i on pixels 0..255 (not divided by 255);" in raw.message
    none = context(tmp_path / "none", probe_record(), data_dir=small_data)
    assert run_check(none, Spec("pca_encoding", params={"formula": "dl2025"})).message == (
        "no 2-D scatter plot was found (your code showed no figures); the task asks for a 2-D scatter of the PCA encoding"
    )


def test_an_autoencoder_scatter_with_the_right_spread_does_not_pass_a_wrong_pca_scatter(tmp_path, small_data, mnist) -> None:
    _, test, pca = mnist
    scaled = encode(pca, test, "dl2025")[:, :2]  # the other formula, in the figure titled PCA
    unscaled = encode(pca, test, "adl2024")[:, :2]  # what the assignment asks for, by chance in the autoencoder's
    figures = [figure(tmp_path, 0, axes(title="Autoencoder latent space", scatters=[scatter("", unscaled)])),
               figure(tmp_path, 1, axes(title="PCA latent space", scatters=[scatter("", scaled)]))]
    ctx = context(tmp_path, probe_record(figures=figures), data_dir=small_data)
    result = run_check(ctx, Spec("pca_encoding", params={"formula": "adl2024", "dataset": "mnist"}))
    assert result.status == "failed"
    assert "in figure 2 (2-D scatter plot, 'PCA latent space') matches alpha_i = (x - mu) . sqrt(lambda_i) v_i" in result.message


def test_principal_angles_of_a_linear_autoencoder(tmp_path, small_data, mnist) -> None:
    _, _, pca = mnist
    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(8, 8, generator=generator, dtype=torch.float64)  # any basis of the subspace will do
    decoder = torch.from_numpy(pca.components_[:8].T) @ mixing  # (784, 8)
    state = {"encoder.weight": torch.randn(8, 784, generator=generator), "encoder.bias": torch.zeros(8),
             "decoder.weight": decoder.float() + 1e-3 * torch.randn(784, 8, generator=generator), "decoder.bias": torch.zeros(784)}
    good = candidate(tmp_path / "a", "linear_ae", state)
    ctx = context(tmp_path / "a", probe_record(models=[good]), model="linear_ae", data_dir=small_data)
    spec = Spec("principal_angles", params={"dataset": "mnist", "max_degrees": 20, "fraction": 0.8})
    result = run_check(ctx, spec)
    assert result.status == "passed", result.message
    assert result.details["weight"] == "decoder.weight" and result.details["measured"] < 5

    state["decoder.weight"] = torch.randn(784, 8, generator=generator)
    bad = candidate(tmp_path / "b", "linear_ae", state)
    result = run_check(context(tmp_path / "b", probe_record(models=[bad]), model="linear_ae", data_dir=small_data), spec)
    assert result.status == "failed"
    assert result.message.startswith("the subspace your linear autoencoder's weight ")
    assert "the smallest 7 of its 8 principal angles to the first 8 principal components reach" in result.message
