"""PCA as the assignments define it (dl2025-a2 tasks 2.3-2.4, adl2024-a2 tasks 2-3), on scikit-learn's PCA.

Harness code, not a solution: the PCA checks fit it on the host, and ``reference.pca`` (the reference
baseline) re-exports it.

Notation of the texts: mean mu = ``pca.mean_``, eigenvalues lambda_i = ``pca.explained_variance_``
(the covariance with the n - 1 denominator), eigenvectors v_i = ``pca.components_[i]``
(= ``components_.T[:, i]``). The two texts differ in the encoding, equation (1):

- dl2025-a2: alpha_i = (x - mu) . sqrt(lambda_i) v_i
- adl2024-a2: alpha_i = (x - mu) . v_i  (what ``pca.transform`` returns)

and agree on generation, equation (2): x = mu + sum_i alpha_i sqrt(lambda_i) v_i. Neither
encoding followed by that generation is a reconstruction (see ``reconstruct``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import scipy.linalg
from sklearn.decomposition import PCA

Formula = Literal["dl2025", "adl2024"]


def scale_pixels(images_uint8: np.ndarray) -> np.ndarray:
    """Scale uint8 images (N, 28, 28) or (N, 784) to float64 (N, 784) in [0, 1], the scaling the texts ask for."""
    images = np.asarray(images_uint8)
    return images.reshape(images.shape[0], -1).astype(np.float64) / 255.0


def fit_pca(x: np.ndarray, n_components: int, seed: int = 0) -> PCA:
    """Fit scikit-learn's PCA with ``n_components`` components to rows of ``x`` (N, D)."""
    return PCA(n_components=n_components, random_state=seed).fit(x)


def _check_formula(formula: str) -> None:
    """Reject an unknown encoding formula with the known ones."""
    if formula not in ("dl2025", "adl2024"):
        raise ValueError(f"unknown PCA encoding formula {formula!r}; known: 'dl2025', 'adl2024'")


def encode(pca: PCA, x: np.ndarray, formula: Formula) -> np.ndarray:
    """Encode rows of ``x`` (N, D) into (N, K) with the text's equation (1).

    "dl2025": alpha_i = (x - mu) . sqrt(lambda_i) v_i; "adl2024": alpha_i = (x - mu) . v_i.
    """
    _check_formula(formula)
    centred = np.asarray(x, dtype=np.float64) - pca.mean_  # (N, D)
    alpha = centred @ pca.components_.T  # (N, K)
    if formula == "dl2025":
        alpha = alpha * np.sqrt(pca.explained_variance_)  # (N, K)
    return alpha


def generate(pca: PCA, alpha: np.ndarray) -> np.ndarray:
    """Generate data (N, D) from coefficients (N, k), k <= K, by equation (2): mu + sum_i alpha_i sqrt(lambda_i) v_i."""
    alpha = np.atleast_2d(np.asarray(alpha, dtype=np.float64))
    k = alpha.shape[1]
    if k > pca.components_.shape[0]:
        raise ValueError(f"{k} coefficients given but the PCA has only {pca.components_.shape[0]} components")
    basis = np.sqrt(pca.explained_variance_[:k])[:, None] * pca.components_[:k]  # (k, D)
    return pca.mean_ + alpha @ basis  # (N, D)


def reconstruct(pca: PCA, x: np.ndarray, k: int) -> np.ndarray:
    """Project rows of ``x`` onto the first ``k`` components: mu + sum_{i<k} ((x - mu) . v_i) v_i.

    This is the reconstruction whose error the texts plot. It is NOT
    ``generate(pca, encode(pca, x, formula))``: with the dl2025 encoding that scales
    component i by lambda_i, with the adl2024 encoding by sqrt(lambda_i). The reconstruction
    is ``generate(pca, encode(pca, x, "adl2024") / sqrt(lambda))`` (or ``/ lambda`` for dl2025).
    """
    if not 0 <= k <= pca.components_.shape[0]:
        raise ValueError(f"k = {k} is outside 0..{pca.components_.shape[0]} (the fitted components)")
    v = pca.components_[:k]  # (k, D)
    centred = np.asarray(x, dtype=np.float64) - pca.mean_  # (N, D)
    return pca.mean_ + (centred @ v.T) @ v  # (N, D)


def reconstruction_errors(
    x_train: np.ndarray, x_eval: np.ndarray, latent_sizes: Iterable[int] = range(2, 21), seed: int = 0
) -> dict[int, float]:
    """Mean squared error per pixel of the k-component reconstruction of ``x_eval``, for every k in ``latent_sizes``.

    PCA is fitted once on ``x_train`` with the largest k; the first k components of a
    K-component fit are those of a k-component fit, so each k slices it.
    """
    sizes = sorted(set(int(k) for k in latent_sizes))
    pca = fit_pca(x_train, n_components=sizes[-1], seed=seed)
    x_eval = np.asarray(x_eval, dtype=np.float64)
    return {k: float(np.mean((reconstruct(pca, x_eval, k) - x_eval) ** 2)) for k in sizes}


def principal_angles(weight: np.ndarray, pca: PCA, d: int) -> np.ndarray:
    """Principal angles (radians, ascending) between a linear (de)coder weight's span and PCA's first d components.

    ``weight`` is a decoder weight (D, d), whose columns span the decoded subspace, or an
    encoder weight (d, D), whose rows do; a torch tensor is accepted. Angles near 0 mean the
    linear autoencoder found the principal subspace, as mle-sheet06 says it should.
    """
    w = np.asarray(weight.detach().cpu().numpy() if hasattr(weight, "detach") else weight, dtype=np.float64)
    n_features = pca.components_.shape[1]
    if w.shape[0] != n_features and w.shape[1] == n_features:
        w = w.T  # encoder weight (d, D) -> (D, d)
    if w.shape[0] != n_features:
        raise ValueError(f"weight of shape {tuple(w.shape)} has no side of length {n_features} (the data dimension)")
    if d > pca.components_.shape[0]:
        raise ValueError(f"d = {d} exceeds the {pca.components_.shape[0]} fitted components")
    return np.sort(scipy.linalg.subspace_angles(w, pca.components_[:d].T))
