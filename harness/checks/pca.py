"""Checks against PCA computed on the host: the reconstruction-error curve, the 2-D encoding, the linear autoencoder.

The host fits scikit-learn's PCA (``harness.pca``) on the prepared public train split (at most
``MAX_FIT_IMAGES`` images, pixels scaled to [0, 1]) and evaluates on the public test split: the same
data the student's notebook reads. Every student needs the same fit, so it is cached in-process per
data folder, dataset, number of training images and number of components.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, get_args

import numpy as np
from pydantic import Field

from harness.checks import CheckSpecLike, Partial, check, options
from harness.checks.figures import Axes, Figure, Line, Scatter, all_lines, read_figures
from harness.data import load_split
from harness.rubric import CheckParams, Fraction, PositiveNumber

if TYPE_CHECKING:
    from sklearn.decomposition import PCA

    from harness.checks.context import CheckContext

MAX_FIT_IMAGES = 10_000
"""Training images PCA is fitted on at most."""

MAX_EVAL_IMAGES = 10_000
"""Test images the host's curves and encodings are computed on at most."""

COMPONENT_STEP = 50
"""Fits are made with a multiple of this many components, so that checks asking for 2, 20 or 32 share one fit."""

PcaDataset = Literal["mnist", "fashionmnist"]
"""Datasets the host fits PCA on."""

DATASETS: tuple[str, ...] = get_args(PcaDataset)


def _dataset(given: str | None, ctx: CheckContext) -> str:
    """The dataset PCA is fitted on: the one params name, else the task's, else mnist."""
    dataset = given or ctx.dataset or "mnist"
    if dataset not in DATASETS:
        raise RuntimeError(f"PCA is fitted on {', '.join(DATASETS)}, not on task {ctx.task_id}'s {dataset!r}: give params.dataset")
    return dataset


@lru_cache(maxsize=8)
def public_images(data_dir: Path, dataset: str, split: str, limit: int) -> np.ndarray:
    """The first ``limit`` images of a public split, scaled to [0, 1], flattened: float64 (N, 784)."""
    from harness.pca import scale_pixels  # scikit-learn is imported only when a PCA check runs

    images, _ = load_split(data_dir, dataset, split)
    return scale_pixels(images[:limit])


@lru_cache(maxsize=8)
def _fit(data_dir: Path, dataset: str, n_train: int, n_components: int) -> PCA:
    from harness.pca import fit_pca

    return fit_pca(public_images(data_dir, dataset, "train", n_train), n_components)


def host_pca(data_dir: Path, dataset: str, n_components: int) -> PCA:
    """PCA with at least ``n_components`` components fitted on the public train split (cached)."""
    size = max(COMPONENT_STEP, math.ceil(n_components / COMPONENT_STEP) * COMPONENT_STEP)
    return _fit(Path(data_dir).resolve(), dataset, MAX_FIT_IMAGES, min(size, 784))


def eval_images(data_dir: Path, dataset: str) -> np.ndarray:
    """The public test images the host evaluates on (scaled, flattened, cached)."""
    return public_images(Path(data_dir).resolve(), dataset, "test", MAX_EVAL_IMAGES)


# -- pca_curve -----------------------------------------------------------------------------------------------

_FORMS = (("per-pixel mean squared error", 1.0, 2), ("squared error per image (sum over 784 pixels)", 784.0, 2),
          ("root mean squared error", 1.0, 1))
"""How a reconstruction error can be reported: name, factor on the per-pixel MSE, power of the pixel scale."""

_SCALINGS = (("[0, 1]", 1.0), ("0..255 (not divided by 255)", 255.0),
             ("Normalize((0.1307,), (0.3081,))", 1 / 0.3081), ("[-1, 1] (Normalize((0.5,), (0.5,)))", 2.0))
"""Pixel scalings a student may have run PCA on: name and factor on [0, 1] pixels (PCA errors scale with it)."""


def _curve_ks(line: Line) -> list[tuple[list[int], str]]:
    """Component counts the line's x values can stand for, with a note when they were read as an index."""
    xs = [round(x) for x in line.x]
    if any(abs(x - r) > 1e-6 for x, r in zip(line.x, xs)) or not xs:
        return []
    options: list[tuple[list[int], str]] = []
    if all(1 <= k <= 784 for k in xs):
        options.append((xs, ""))
    if xs == list(range(len(xs))):  # plt.plot(errors): x is the index
        options += [([k + s for k in xs], f" (plotted against the list index; read as {s + xs[0]}..{s + xs[-1]} components)")
                    for s in (1, 2)]
    return options


def _host_curve(pca: PCA, images: np.ndarray, ks: list[int]) -> np.ndarray:
    from harness.pca import reconstruct

    return np.array([float(np.mean((reconstruct(pca, images, k) - images) ** 2)) for k in ks])


def _fit_line(y: np.ndarray, mse: np.ndarray, tolerance: float) -> tuple[str, str, float] | None:
    """The (form, scaling) whose curve the line follows within ``tolerance`` (relative, every point); the worst deviation."""
    best = None
    for form, factor, power in _FORMS:
        for scaling, scale in _SCALINGS:
            expected = factor * scale ** power * (mse if power == 2 else np.sqrt(mse))
            deviation = float(np.max(np.abs(y - expected) / expected))
            if deviation <= tolerance and (best is None or deviation < best[2]):
                best = (form, scaling, deviation)
    return best


class PcaCurveOptions(CheckParams):
    """The ``params`` of ``pca_curve``: ``{dataset: mnist, tolerance: 0.15}``."""

    dataset: PcaDataset | None = None
    """The images PCA is fitted on: mnist or fashionmnist (default: the task's dataset, else mnist)."""
    tolerance: PositiveNumber = 0.15
    """Allowed relative deviation of every point from the host's curve (default 0.15)."""


class PcaCurveParams(CheckParams):
    """What ``pca_curve`` reads: its ``params`` (all optional)."""

    params: PcaCurveOptions = PcaCurveOptions()
    """Options: ``dataset``, ``tolerance``."""


@check("pca_curve", params=PcaCurveParams)
def check_pca_curve(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that a plotted line is PCA's reconstruction error against the number of components.

    The host fits PCA on the public train images (pixels in [0, 1]) and computes the error of the
    k-component reconstruction of the public test images at the line's x values. The line passes when
    every point is within ``tolerance`` (relative, default 0.15) of that curve as per-pixel MSE, squared
    error per image, or RMSE. A line matching it on other pixel scales (0..255, normalised), or off by
    one constant factor, gets half the points with the diagnosis. Lines labelled with "pca" (or in an
    axes titled so) are tried first. params: ``dataset`` (default: the task's, else mnist), ``tolerance``.
    """
    given = options(spec, PcaCurveOptions)
    tolerance, dataset = given.tolerance, _dataset(given.dataset, ctx)
    figures, total = read_figures(ctx)
    candidates = [
        (figure, axes, line) for figure, axes, line in all_lines(figures)
        if len(line.y) >= 3 and min(line.y) > 0 and _curve_ks(line)
    ]
    if not candidates:
        shown = f" among your {total} figures" if total else " (your code showed no figures)"
        raise AssertionError(
            f"no line of PCA reconstruction errors against the number of components was found{shown}: "
            "plot the error for each number of components, e.g. plt.plot(ks, errors, label='PCA')"
        )
    candidates.sort(key=lambda c: "pca" not in f"{c[2].label} {c[1].title} {c[0].suptitle}".lower())
    images = eval_images(ctx.require_data_dir(), dataset)
    diagnosis: tuple[str, bool, Figure, Line] | None = None
    for figure, axes, line in candidates:
        y = np.array(line.y)
        for ks, note in _curve_ks(line):
            mse = _host_curve(host_pca(ctx.require_data_dir(), dataset, max(ks)), images, ks)
            found = _fit_line(y, mse, tolerance)
            if found is not None and found[1] == "[0, 1]":
                ctx.details.update(measured=round(found[2], 4), form=found[0], figure=figure.number + 1,
                                   expected=[round(float(v), 6) for v in mse])
                return
            if diagnosis is None:
                diagnosis = (*_diagnose(y, mse, found, tolerance, note), figure, line)
    assert diagnosis is not None
    message, close, figure, line = diagnosis
    ctx.details.update(figure=figure.number + 1, line=line.label)
    labelled = f"the curve {line.label!r} in " if line.label else "the curve in "
    text = f"{labelled}{figure.describe()} {message}"
    if close:
        raise Partial(0.5, text)
    raise AssertionError(text)


def _diagnose(
    y: np.ndarray, mse: np.ndarray, found: tuple[str, str, float] | None, tolerance: float, note: str
) -> tuple[str, bool]:
    """What a line that is not the [0, 1] PCA curve is, and whether it is the right curve on another scale."""
    if found is not None:
        return (
            f"is PCA's {found[0]} on pixels scaled to {found[1]}{note}: scale the images to [0, 1] "
            "(divide by 255) before fitting PCA, as the task asks"
        ), True
    ratio = float(np.median(y / mse))
    if float(np.max(np.abs(y - ratio * mse) / (ratio * mse))) <= tolerance:
        return (
            f"has the shape of PCA's reconstruction error but is {ratio:.4g} times the per-pixel mean squared error{note}: "
            "plot the mean squared error per pixel (or per image) of images scaled to [0, 1]"
        ), True
    return (
        f"does not follow PCA's reconstruction error{note}: expected a per-pixel MSE from {mse[0]:.4g} to "
        f"{mse[-1]:.4g}, your curve goes from {y[0]:.4g} to {y[-1]:.4g}; reconstruct with the first k components, "
        "mu + sum_i ((x - mu) . v_i) v_i, and average the squared difference to the original images"
    ), False


# -- pca_encoding --------------------------------------------------------------------------------------------

FORMULAS = {
    "dl2025": "alpha_i = (x - mu) . sqrt(lambda_i) v_i",
    "adl2024": "alpha_i = (x - mu) . v_i",
}


def _pooled(scatters: tuple[Scatter, ...]) -> tuple[int, np.ndarray] | None:
    """Point count and per-axis std of an axes' 2-D scatters taken together (one collection per class is common)."""
    usable = [s for s in scatters if s.dims == 2 and s.mean and s.n > 0]
    n = sum(s.n for s in usable)
    if n == 0:
        return None
    mean = sum(s.n * np.array(s.mean) for s in usable) / n
    second = sum(s.n * (np.array(s.std) ** 2 + np.array(s.mean) ** 2) for s in usable) / n
    return n, np.sqrt(np.maximum(second - mean**2, 0.0))


def _encodings(pca: PCA, images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-axis std of the 2-D encodings a student may have plotted, by description (the first is dl2025's)."""
    from harness.pca import encode

    unscaled = encode(pca, images, "adl2024")[:, :2].std(0)  # (2,) = about sqrt(lambda_1), sqrt(lambda_2)
    lam = np.sqrt(pca.explained_variance_[:2])
    return {
        "dl2025": unscaled * lam,
        "adl2024": unscaled,
        f"{FORMULAS['dl2025']} on pixels 0..255 (not divided by 255)": unscaled * lam * 255**2,
        f"{FORMULAS['adl2024']} on pixels 0..255 (not divided by 255)": unscaled * 255,
        "whitened coefficients (x - mu) . v_i / sqrt(lambda_i) (PCA(whiten=True))": unscaled / lam,
    }


def _matches(std: np.ndarray, expected: np.ndarray, tolerance: float) -> bool:
    """Within ``tolerance`` (relative) on both axes, in either order (which component is on x does not matter)."""
    return any(bool(np.all(np.abs(s - expected) / expected <= tolerance)) for s in (std, std[::-1]))


class PcaEncodingOptions(CheckParams):
    """The ``params`` of ``pca_encoding``: ``{formula: dl2025, dataset: mnist}``."""

    formula: Literal["dl2025", "adl2024"]
    """The assignment's encoding: dl2025 (alpha_i = (x - mu) . sqrt(lambda_i) v_i) or adl2024 (alpha_i = (x - mu) . v_i)."""
    dataset: PcaDataset | None = None
    """The images PCA is fitted on: mnist or fashionmnist (default: the task's dataset, else mnist)."""
    tolerance: PositiveNumber = 0.35
    """Allowed relative deviation of the scatter's per-axis spread (default 0.35)."""


class PcaEncodingParams(CheckParams):
    """What ``pca_encoding`` reads: its ``params``."""

    params: PcaEncodingOptions
    """Options: ``formula`` (required), ``dataset``, ``tolerance``."""


@check("pca_encoding", params=PcaEncodingParams)
def check_pca_encoding(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that a 2-D scatter shows the PCA encoding of the assignment's formula, judged by its spread.

    The host encodes the public test images with ``formula`` (dl2025: alpha_i = (x - mu) . sqrt(lambda_i) v_i,
    adl2024: alpha_i = (x - mu) . v_i); a scatter passes when its per-axis std is within ``tolerance``
    (relative, default 0.35: students plot subsets, train or test images) of the encoding's. Scatters titled
    or labelled "pca" are tried first; several scatters in one axes (one per class) are pooled. A failing
    scatter is named with the formula or scaling it matches instead. params: ``formula``, ``dataset``, ``tolerance``.
    """
    given = options(spec, PcaEncodingOptions)
    formula, tolerance, dataset = given.formula, given.tolerance, _dataset(given.dataset, ctx)
    figures, total = read_figures(ctx)
    scatters: list[tuple[Figure, Axes, int, np.ndarray]] = []
    for figure in figures:
        for axes in figure.axes:
            pooled = _pooled(axes.scatters) if axes.projection == "2d" else None
            if pooled is not None and pooled[0] >= 10:
                scatters.append((figure, axes, *pooled))
    if not scatters:
        shown = f" among your {total} figures" if total else " (your code showed no figures)"
        raise AssertionError(f"no 2-D scatter plot was found{shown}; the task asks for a 2-D scatter of the PCA encoding")
    titled = [s for s in scatters if "pca" in f"{s[0].words}".lower()]
    if titled:  # an autoencoder's latent scatter can have any spread: when the PCA one is named, judge only it
        scatters = titled
    pca = host_pca(ctx.require_data_dir(), dataset, 2)
    encodings = _encodings(pca, eval_images(ctx.require_data_dir(), dataset))
    expected = encodings[formula]
    ctx.details["expected_std"] = [round(float(v), 4) for v in expected]
    for figure, axes, n, std in scatters:
        if _matches(std, expected, tolerance):
            ctx.details.update(measured=[round(float(v), 4) for v in std], figure=figure.number + 1, points=n)
            return
    figure, axes, n, std = scatters[0]
    ctx.details.update(measured=[round(float(v), 4) for v in std], figure=figure.number + 1, points=n)
    spread = f"your PCA scatter's spread (std {std[0]:.3g}, {std[1]:.3g}) in {figure.describe()}"
    wanted = f"this assignment asks for {FORMULAS[formula]} (expected std {expected[0]:.3g}, {expected[1]:.3g})"
    for name, stds in encodings.items():
        if name != formula and _matches(std, stds, tolerance):
            other = FORMULAS.get(name, name)
            if name in FORMULAS:
                other += " (unscaled)" if name == "adl2024" else ""
            raise AssertionError(f"{spread} matches {other}; {wanted}")
    raise AssertionError(
        f"{spread} matches no PCA encoding of the {dataset} images; {wanted}: fit PCA on images scaled to [0, 1] "
        "and plot the first two coefficients"
    )


# -- principal_angles ----------------------------------------------------------------------------------------


class PrincipalAnglesOptions(CheckParams):
    """The ``params`` of ``principal_angles``: ``{dataset: fashionmnist}``."""

    dataset: PcaDataset | None = None
    """The images PCA is fitted on: mnist or fashionmnist (default: the task's dataset, else mnist)."""
    max_degrees: Annotated[float, Field(strict=True, gt=0, le=90)] = 20
    """The largest principal angle allowed, in degrees (default 20)."""
    fraction: Fraction = 0.8
    """The share of the smallest angles that must stay within max_degrees, in (0, 1] (default 0.8)."""


class PrincipalAnglesParams(CheckParams):
    """What ``principal_angles`` reads: its ``params`` (all optional)."""

    params: PrincipalAnglesOptions = PrincipalAnglesOptions()
    """Options: ``dataset``, ``max_degrees``, ``fraction``."""


@check("principal_angles", params=PrincipalAnglesParams)
def check_principal_angles(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that a linear autoencoder's weights span PCA's principal subspace.

    Takes the model's 2-D weights with a side of 784 (encoder (d, 784) or decoder (784, d)), fits PCA
    with d components on the public train images (pixels in [0, 1]) and computes the principal angles
    between the two subspaces: the smallest ceil(``fraction`` x d) of them (default 0.8: the last
    components' eigenvalues are close, so their directions mix) must all be at most ``max_degrees``
    (default 20). The best-aligned weight counts. params: ``dataset``, ``max_degrees``, ``fraction``.
    """
    given = options(spec, PrincipalAnglesOptions)
    max_degrees, fraction, dataset = given.max_degrees, given.fraction, _dataset(given.dataset, ctx)
    model = ctx.require_model()
    relative = model.get("state_dict")
    assert relative, f"{ctx.model_note}, but its weights were not exported, so they cannot be compared with PCA"
    state = ctx.load_tensor(relative)
    weights = {
        name: tensor for name, tensor in (state.items() if isinstance(state, dict) else ())
        if tensor.ndim == 2 and 784 in tensor.shape and min(tensor.shape) < 784 and tensor.is_floating_point()
    }
    assert weights, (
        f"{ctx.model_note}, but it has no linear layer from or to the 784 pixels (a weight of shape (d, 784) or "
        "(784, d)): the linear autoencoder maps the flattened image to d features and back with nn.Linear"
    )
    from harness.pca import principal_angles

    results = []
    for name, weight in weights.items():
        d = min(weight.shape)
        angles = np.degrees(principal_angles(weight.double(), host_pca(ctx.require_data_dir(), dataset, d), d))
        kept = angles[: math.ceil(fraction * d)]
        results.append((float(kept.max()), name, d, angles))
    worst, name, d, angles = min(results)
    kept = math.ceil(fraction * d)
    ctx.details.update(measured=round(worst, 2), weight=name, latent=d,
                       angles=[round(float(a), 2) for a in angles])
    assert worst <= max_degrees, (
        f"the subspace your linear autoencoder's weight {name} ({d} dimensions) spans is not PCA's: the smallest "
        f"{kept} of its {d} principal angles to the first {d} principal components reach {worst:.1f} degrees "
        f"(allowed: {max_degrees:g}); train longer, without non-linear activations (on the latent code too), "
        "with a mean squared error loss"
    )


def clear_cache() -> None:
    """Forget the cached images and fits (tests that prepare new data in the same folder)."""
    public_images.cache_clear()
    _fit.cache_clear()


