"""The PCA baseline implements both texts' formulas: checked against scikit-learn and a numpy eigen-decomposition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference.pca import encode, fit_pca, generate, principal_angles, reconstruct, reconstruction_errors, scale_pixels

N, D, K = 200, 12, 5


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    """Anisotropic Gaussian data with well separated variances, so eigenvectors are well defined."""
    rng = np.random.default_rng(0)
    scales = np.linspace(3.0, 0.2, D)
    rotation, _ = np.linalg.qr(rng.normal(size=(D, D)))
    return rng.normal(size=(N, D)) * scales @ rotation.T + rng.normal(size=D)


@pytest.fixture(scope="module")
def eigen(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, eigenvalues (descending) and eigenvectors (columns) of the sample covariance, by numpy."""
    mu = data.mean(axis=0)
    cov = np.cov(data, rowvar=False)  # n - 1 denominator, like explained_variance_
    lam, vec = np.linalg.eigh(cov)
    order = np.argsort(lam)[::-1]
    return mu, lam[order], vec[:, order]


def test_scale_pixels_maps_uint8_to_unit_interval() -> None:
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)  # (1, 2, 2)
    scaled = scale_pixels(images)
    assert scaled.dtype == np.float64 and scaled.shape == (1, 4)
    np.testing.assert_allclose(scaled, [[0.0, 1.0, 0.2, 0.4]])


def test_sklearn_attributes_are_the_texts_mu_lambda_v(data: np.ndarray, eigen: tuple) -> None:
    mu, lam, vec = eigen
    pca = fit_pca(data, K)
    np.testing.assert_allclose(pca.mean_, mu, atol=1e-12)
    np.testing.assert_allclose(pca.explained_variance_, lam[:K], rtol=1e-9)
    # Eigenvectors are defined up to sign; scikit-learn fixes its own sign convention.
    signs = np.sign(np.sum(pca.components_.T * vec[:, :K], axis=0))
    np.testing.assert_allclose(pca.components_.T, vec[:, :K] * signs, atol=1e-9)


def test_adl2024_encoding_is_sklearn_transform_and_the_dot_product(data: np.ndarray, eigen: tuple) -> None:
    mu, _, vec = eigen
    pca = fit_pca(data, K)
    alpha = encode(pca, data, "adl2024")
    assert alpha.shape == (N, K)
    np.testing.assert_allclose(alpha, pca.transform(data), atol=1e-10)
    signs = np.sign(np.sum(pca.components_.T * vec[:, :K], axis=0))
    np.testing.assert_allclose(alpha, (data - mu) @ vec[:, :K] * signs, atol=1e-9)


def test_dl2025_encoding_scales_by_sqrt_lambda(data: np.ndarray, eigen: tuple) -> None:
    mu, lam, vec = eigen
    pca = fit_pca(data, K)
    alpha = encode(pca, data, "dl2025")
    signs = np.sign(np.sum(pca.components_.T * vec[:, :K], axis=0))
    explicit = (data - mu) @ (np.sqrt(lam[:K]) * vec[:, :K]) * signs  # (x - mu) . sqrt(lambda_i) v_i
    np.testing.assert_allclose(alpha, explicit, atol=1e-9)
    np.testing.assert_allclose(alpha, pca.transform(data) * np.sqrt(pca.explained_variance_), atol=1e-10)
    with pytest.raises(ValueError, match="dl2025"):
        encode(pca, data, "dl2024")  # type: ignore[arg-type]


def test_generate_follows_equation_2(data: np.ndarray, eigen: tuple) -> None:
    mu, lam, vec = eigen
    pca = fit_pca(data, K)
    alpha = np.array([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]])
    signs = np.sign(np.sum(pca.components_.T * vec[:, :K], axis=0))
    explicit = mu + sum(alpha[:, [i]] * np.sqrt(lam[i]) * vec[:, i] * signs[i] for i in range(3))
    np.testing.assert_allclose(generate(pca, alpha), explicit, atol=1e-9)
    np.testing.assert_allclose(generate(pca, alpha)[1], mu, atol=1e-12)  # alpha = 0 generates the mean


def test_reconstruct_is_projection_and_matches_inverse_transform(data: np.ndarray) -> None:
    pca = fit_pca(data, K)
    np.testing.assert_allclose(reconstruct(pca, data, K), pca.inverse_transform(pca.transform(data)), atol=1e-10)
    pca3 = fit_pca(data, 3)
    np.testing.assert_allclose(reconstruct(pca, data, 3), pca3.inverse_transform(pca3.transform(data)), atol=1e-9)
    once = reconstruct(pca, data, 3)
    np.testing.assert_allclose(reconstruct(pca, once, 3), once, atol=1e-10)  # idempotent


def test_encode_then_generate_is_not_a_reconstruction(data: np.ndarray) -> None:
    pca = fit_pca(data, K)
    lam = pca.explained_variance_
    proper = reconstruct(pca, data, K)
    for formula, scale in [("dl2025", lam), ("adl2024", np.sqrt(lam))]:
        alpha = encode(pca, data, formula)
        np.testing.assert_allclose(generate(pca, alpha / scale), proper, atol=1e-9)
        assert not np.allclose(generate(pca, alpha), proper, atol=1e-3)
    # generate(encode_dl2025) scales component i by lambda_i, generate(encode_adl2024) by sqrt(lambda_i).
    centred_coords = pca.transform(data)  # (x - mu) . v_i
    np.testing.assert_allclose(
        generate(pca, encode(pca, data, "dl2025")), pca.mean_ + (centred_coords * lam) @ pca.components_, atol=1e-9
    )


def test_reconstruction_errors_decrease_and_match_sklearn(data: np.ndarray) -> None:
    train, held_out = data[:150], data[150:]
    errors = reconstruction_errors(train, held_out, latent_sizes=range(2, 8))
    assert list(errors) == [2, 3, 4, 5, 6, 7]
    values = list(errors.values())
    assert all(a > b for a, b in zip(values, values[1:]))
    pca4 = fit_pca(train, 4)
    expected = np.mean((pca4.inverse_transform(pca4.transform(held_out)) - held_out) ** 2)
    assert errors[4] == pytest.approx(expected, rel=1e-9)


def test_principal_angles_small_for_pca_subspace_and_large_for_random(data: np.ndarray) -> None:
    pca = fit_pca(data, K)
    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(3, 3))  # any invertible mixing spans the same subspace
    decoder_weight = pca.components_[:3].T @ mixing  # (D, 3), like nn.Linear(3, D).weight
    angles = principal_angles(decoder_weight, pca, 3)
    assert angles.shape == (3,)
    assert np.all(angles < 1e-6)
    np.testing.assert_allclose(principal_angles(torch.from_numpy(decoder_weight.T), pca, 3), angles, atol=1e-9)
    random_angles = principal_angles(rng.normal(size=(D, 3)), pca, 3)
    assert random_angles.max() > 0.5
    with pytest.raises(ValueError, match="no side of length"):
        principal_angles(rng.normal(size=(5, 3)), pca, 3)
