"""A deterministic synthetic stand-in for MNIST, built from real handwriting.

The strokes come from scikit-learn's 1,797 handwritten 8x8 digits (they ship with
scikit-learn, nothing is downloaded). The base digits are first split once, by a
fixed stratified split, into disjoint train / test / hidden pools, so no split ever
sees a base digit of another. Each base digit is brought to MNIST geometry the way
MNIST itself was made: upsampled smoothly to fit a 20x20 box keeping its aspect
ratio and placed in a 28x28 field so that its centre of mass is at the centre.
Every output image then draws one base digit of its split's pool and a random
augmentation: a stroke width (the soft base digit as written, half-eroded or
half-dilated); an affine map (rotation, scale, aspect, shear, small translation)
plus an elastic displacement field, applied in one ``grid_sample``; an ink threshold
and contrast ramp, which also thins or thickens the stroke; and a little
multiplicative noise on the ink. Background stays exactly black, ink is bright.

Everything is vectorised over batches with torch on the CPU, in float32; the random
parameters come from generators seeded by ``(seed, split)``, so the same arguments
give the same bytes in any process and with any thread count.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SPLITS = ("train", "test", "hidden")
"""The splits a synthetic MNIST can be drawn for; their base digits are disjoint."""

POOL_FRACTIONS = (0.6, 0.2, 0.2)
"""Share of each class's base digits given to the train, test and hidden pools."""

_POOL_SEED = 20_251_120
"""Fixed seed of the base-digit split: the pools never depend on the user's seed."""

_DATASET_TAG = 0x4D4E  # "MN": keeps the random streams apart from other datasets'
_CHUNK = 2048  # images per vectorised batch: the fastest size here (float32 batches stay in cache)
_BOX = 20  # MNIST fits each digit in a 20x20 box ...
_SIZE = 28  # ... inside a 28x28 field
_N_BASIS = 19  # grid coefficients per coordinate: 2 linear, 1 constant, 16 elastic


def synthesize(split: str, n: int, seed: int, *, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` synthetic MNIST images of ``split`` ("train", "test" or "hidden").

    Returns ``(images, labels)``: uint8 ``(n, 28, 28)``, a bright digit on black, and
    int64 ``(n,)`` labels 0..9, balanced (``n // 10`` per class, the remainder spread
    over the first classes), in random order. ``threads``: torch intra-op threads
    while rendering; the bytes do not depend on it, and 1 is fastest for batches this
    small (more threads contend, several times slower on a busy machine).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    bases, pools = _base_digits()
    seq = np.random.SeedSequence([seed, SPLITS.index(split), _DATASET_TAG])
    rng = np.random.default_rng(seq.spawn(1)[0])
    torch_gen = torch.Generator().manual_seed(int(seq.generate_state(1, np.uint64)[0] >> 1))

    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)  # (n,)
    base_index = np.empty(n, dtype=np.int64)
    for digit in range(10):
        where = np.flatnonzero(labels == digit)
        pool = pools[split][digit]
        base_index[where] = pool[rng.integers(0, len(pool), size=len(where))]
    params = _draw_augmentation(rng, n)

    images = np.empty((n, _SIZE, _SIZE), dtype=np.uint8)
    caller_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            chunk = {name: value[start:stop] for name, value in params.items()}
            images[start:stop] = _render(bases, base_index[start:stop], chunk, torch_gen)
    finally:
        torch.set_num_threads(caller_threads)
    return images, labels


def base_pools() -> dict[str, np.ndarray]:
    """Indices into ``sklearn.datasets.load_digits()`` of each split's base digits."""
    _, pools = _base_digits()
    return {split: np.sort(np.concatenate(pools[split])) for split in SPLITS}


@lru_cache(maxsize=1)
def _base_digits() -> tuple[torch.Tensor, dict[str, list[np.ndarray]]]:
    """The 1,797 base digits in MNIST geometry at three stroke widths, and each split's pool per class."""
    pixels, labels = _load_sklearn_digits()
    small = pixels.astype(np.float32) / 16.0  # (1797, 8, 8) ink in [0, 1]
    placed = _to_mnist_geometry(small)  # (1797, 1, 28, 28)
    thick = F.max_pool2d(placed, 3, stride=1, padding=1)  # (1797, 1, 28, 28) dilation
    thin = -F.max_pool2d(-placed, 3, stride=1, padding=1)  # (1797, 1, 28, 28) erosion
    # Three stroke widths per base digit: thinner, as written, thicker.
    bases = torch.cat([(placed + thin) / 2, placed, (placed + thick) / 2], dim=1)  # (1797, 3, 28, 28)

    rng = np.random.default_rng(_POOL_SEED)
    pools: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        n_train = round(POOL_FRACTIONS[0] * len(members))
        n_test = round(POOL_FRACTIONS[1] * len(members))
        pools["train"].append(members[:n_train])
        pools["test"].append(members[n_train : n_train + n_test])
        pools["hidden"].append(members[n_train + n_test :])
    return bases, pools


def _load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits: pixels ``(1797, 8, 8)`` in 0..16 and int64 labels ``(1797,)``.

    Reads the CSV that ships inside scikit-learn directly, as ``load_digits`` does,
    without importing scikit-learn itself (that import alone takes seconds).
    """
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    csv = Path(locations[0]) / "datasets" / "data" / "digits.csv.gz" if locations else None
    if csv is None or not csv.is_file():  # another layout: let scikit-learn find it
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target.astype(np.int64)
    table = np.loadtxt(csv, delimiter=",")  # (1797, 65): 64 pixels, then the label
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def _to_mnist_geometry(small: np.ndarray) -> torch.Tensor:
    """Upsample 8x8 digits into a 20x20 box (aspect kept), centred by mass in 28x28."""
    n, h, w = small.shape
    ink = small > 1.0 / 16.0
    rows = ink.any(axis=2)  # (n, 8)
    cols = ink.any(axis=1)  # (n, 8)
    top = rows.argmax(axis=1)
    bottom = h - 1 - rows[:, ::-1].argmax(axis=1)
    left = cols.argmax(axis=1)
    right = w - 1 - cols[:, ::-1].argmax(axis=1)
    box_h = (bottom - top + 1).astype(np.float64)
    box_w = (right - left + 1).astype(np.float64)
    longest = np.maximum(box_h, box_w)
    # Input crop in normalised coordinates (align_corners=False: -1 is the outer edge).
    in_cx = (left + right + 1) / w - 1.0
    in_cy = (top + bottom + 1) / h - 1.0
    in_hx = box_w / w
    in_hy = box_h / h
    # Output half-sizes: the longest side of the crop becomes 20 of the 28 pixels.
    out_hx = _BOX * box_w / longest / _SIZE
    out_hy = _BOX * box_h / longest / _SIZE
    source = torch.from_numpy(small).unsqueeze(1)  # (n, 1, 8, 8)

    def place(shift_x: np.ndarray, shift_y: np.ndarray) -> torch.Tensor:
        """Resample the crops with their box centred at the given normalised shift."""
        theta = np.zeros((n, 2, 3))
        theta[:, 0, 0] = in_hx / out_hx
        theta[:, 0, 2] = in_cx - shift_x * in_hx / out_hx
        theta[:, 1, 1] = in_hy / out_hy
        theta[:, 1, 2] = in_cy - shift_y * in_hy / out_hy
        grid = F.affine_grid(torch.from_numpy(theta).float(), [n, 1, _SIZE, _SIZE], align_corners=False)
        placed = F.grid_sample(source, grid, mode="bicubic", padding_mode="zeros", align_corners=False)
        return placed.clamp_(0.0, 1.0)  # (n, 1, 28, 28)

    centred_box = place(np.zeros(n), np.zeros(n)).squeeze(1).double().numpy()  # (n, 28, 28)
    mass = centred_box.sum(axis=(1, 2))
    coords = np.arange(_SIZE) + 0.5  # pixel centres, edges at 0 and 28
    com_x = (centred_box.sum(axis=1) * coords).sum(axis=1) / mass
    com_y = (centred_box.sum(axis=2) * coords).sum(axis=1) / mass
    # Move the centre of mass to the middle of the field (14, 14), in normalised units.
    return place((_SIZE / 2 - com_x) * 2 / _SIZE, (_SIZE / 2 - com_y) * 2 / _SIZE)


def _draw_augmentation(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw every per-image random parameter of the augmentation, for all ``n`` at once."""
    angle = np.deg2rad(rng.normal(0.0, 7.0, n).clip(-20, 20))
    scale = rng.uniform(0.85, 1.1, n)
    aspect = np.exp(rng.normal(0.0, 0.08, n))
    shear = rng.normal(0.0, 0.1, n).clip(-0.3, 0.3)
    shift = rng.normal(0.0, 0.8, (n, 2)).clip(-2.0, 2.0) * 2 / _SIZE  # pixels -> normalised
    cos, sin = np.cos(angle), np.sin(angle)
    # Forward map of the digit: rotate @ shear @ scale; the sampling grid needs its inverse.
    forward = np.empty((n, 2, 2))
    sx, sy = scale * aspect, scale / aspect
    forward[:, 0, 0] = cos * sx
    forward[:, 0, 1] = (cos * shear - sin) * sy
    forward[:, 1, 0] = sin * sx
    forward[:, 1, 1] = (sin * shear + cos) * sy
    inverse = np.linalg.inv(forward)  # (n, 2, 2)
    # Grid coefficients per output coordinate (x, y): [a_x, a_y, offset, 16 elastic weights].
    coefficients = np.empty((n, 2, _N_BASIS))
    coefficients[:, :, :2] = inverse
    coefficients[:, :, 2] = -(inverse @ shift[:, :, None])[:, :, 0]
    # Elastic field: a coarse 4x4 grid of displacements (std about 0.6 pixel).
    coefficients[:, :, 3:] = rng.normal(0.0, 0.6, (n, 2, 16)) * 2 / _SIZE
    threshold = rng.uniform(0.35, 0.55, n)  # where the ink starts, on the soft stroke
    softness = rng.uniform(0.1, 0.2, n)  # half-width of the anti-aliased edge
    gain = rng.uniform(1.0, 1.2, n)  # > 1 saturates the stroke's core at 255
    return {
        "coefficients": coefficients.astype(np.float32),  # (n, 2, 19)
        # 0 thins the stroke (erosion), 1 keeps it, 2 thickens it (dilation).
        "stroke": rng.choice(3, size=n, p=[0.35, 0.45, 0.2]),
        "low": (threshold - softness).astype(np.float32),
        "slope": (gain / (2 * softness)).astype(np.float32),
        "noise": rng.uniform(0.0, 0.25, n).astype(np.float32),
    }


@lru_cache(maxsize=1)
def _grid_basis() -> torch.Tensor:
    """Basis ``(19, 784)`` mapping grid coefficients to sampling coordinates of each pixel.

    Rows: the pixel's own x and y (normalised, align_corners=False), a constant, and 16
    smooth bicubic bumps of a 4x4 control grid (the elastic displacement field).
    """
    centres = (torch.arange(_SIZE, dtype=torch.float64) * 2 + 1) / _SIZE - 1  # (28,)
    uy, ux = torch.meshgrid(centres, centres, indexing="ij")  # (28, 28) each
    bumps = F.interpolate(
        torch.eye(16, dtype=torch.float64).view(16, 1, 4, 4), size=(_SIZE, _SIZE), mode="bicubic", align_corners=True
    )  # (16, 1, 28, 28)
    rows = [ux.reshape(1, -1), uy.reshape(1, -1), torch.ones(1, _SIZE * _SIZE, dtype=torch.float64)]
    return torch.cat(rows + [bumps.reshape(16, -1)]).float()  # (19, 784)


def _render(bases: torch.Tensor, index: np.ndarray, params: dict[str, np.ndarray], gen: torch.Generator) -> np.ndarray:
    """Pick the stroke width, warp, threshold and add noise to one batch of base digits; uint8 ``(B, 28, 28)`` out."""
    batch = len(index)
    base = bases[torch.from_numpy(index), torch.from_numpy(params["stroke"])].unsqueeze(1)  # (B, 1, 28, 28)
    coefficients = torch.from_numpy(params["coefficients"]).reshape(batch * 2, _N_BASIS)  # (B * 2, 19)
    grid = (coefficients @ _grid_basis()).view(batch, 2, _SIZE, _SIZE).permute(0, 2, 3, 1)  # (B, 28, 28, 2)
    x = F.grid_sample(base, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (B, 1, 28, 28)

    # Contrast: a linear ramp from the ink threshold, saturating the stroke's core.
    low = torch.from_numpy(params["low"]).view(batch, 1, 1, 1)
    slope = torch.from_numpy(params["slope"]).view(batch, 1, 1, 1)
    x = x.sub_(low).mul_(slope).clamp_(min=0.0)  # (B, 1, 28, 28)
    # A little multiplicative noise on the ink; the background stays exactly black.
    jitter = torch.rand(x.shape, generator=gen).sub_(0.5)  # (B, 1, 28, 28)
    x = x.addcmul_(x, jitter.mul_(torch.from_numpy(params["noise"]).view(batch, 1, 1, 1)))
    x = x.clamp_(max=1.0).mul_(255.0).add_(0.5)
    return x.to(torch.uint8).squeeze(1).numpy()  # (B, 28, 28)
