"""Deterministic synthetic SIGNS: 64x64 RGB photos of a hand showing 0 to 5 raised fingers.

The hand is drawn as signed distance fields: a palm (ellipse), a forearm
reaching the bottom edge, four fingers and a thumb as capsules. A raised finger
is long and fanned out; a folded one is a short stub over the top of the palm
(knuckles); a folded thumb lies across the palm. The label is the number of
raised fingers, the thumb counting as one, as in the real SIGNS data (5 is the
open hand, 1 the index finger). For a count there is sometimes more than one
natural choice (2 = index and middle, or thumb and index). Each sample varies
in hand side, rotation, scale, position, finger lengths and widths, skin tone,
lighting, background (plain or textured, varying colours), edge softness and
noise, so that the sheet's small CNN can learn it but not perfectly.

All randomness comes from one numpy Generator seeded with (seed, split, a tag
for this dataset), consumed in a fixed order, so the same arguments give the
same bytes in any process and with any thread count.
"""

from __future__ import annotations

import numpy as np

from harness.data.fashion import keep_temporaries_on_heap

SIZE = 64
N_CLASSES = 6
SPLITS = {"train": 0, "val": 1, "test": 2, "hidden": 3}

_DATASET_TAG = 0x5161  # keeps this dataset's streams apart from the other synthetic datasets
_CHUNK = 32  # images rendered at once: (32, 64, 64) float32 arrays stay in cache.
# Parameters are drawn chunk by chunk, so changing _CHUNK changes the images.

F32 = np.float32
Array = np.ndarray

# Raised-finger sets per count, as (thumb, index, middle, ring, pinky) flags, with their probabilities.
_POSES: dict[int, list[tuple[tuple[int, ...], float]]] = {
    0: [((0, 0, 0, 0, 0), 1.0)],
    1: [((0, 1, 0, 0, 0), 1.0)],
    2: [((0, 1, 1, 0, 0), 0.7), ((1, 1, 0, 0, 0), 0.3)],
    3: [((0, 1, 1, 1, 0), 0.55), ((1, 1, 1, 0, 0), 0.35), ((0, 0, 1, 1, 1), 0.1)],
    4: [((0, 1, 1, 1, 1), 0.85), ((1, 1, 1, 1, 0), 0.15)],
    5: [((1, 1, 1, 1, 1), 1.0)],
}

# Fingers (index, middle, ring, pinky) in hand units: base across the top of the palm, length, radius.
_BASE_X = np.array([-6.6, -2.2, 2.2, 6.4], dtype=F32)
_BASE_Y = np.array([-9.0, -10.0, -9.5, -8.0], dtype=F32)
_LENGTH = np.array([16.0, 18.0, 16.5, 13.0], dtype=F32)
_RADIUS = np.array([2.4, 2.5, 2.4, 2.1], dtype=F32)
_SKIN_LIGHT = np.array([0.96, 0.80, 0.70], dtype=F32)
_SKIN_DARK = np.array([0.42, 0.27, 0.19], dtype=F32)


def synthesize(split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw n synthetic SIGNS images of one split: uint8 (n, 64, 64, 3) RGB and int64 labels (n,) in 0..5."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    if n < 0:
        raise ValueError(f"cannot draw a negative number of images (n={n})")
    if seed < 0:
        raise ValueError(f"the seed must be a non-negative integer, got {seed}")
    rng = np.random.default_rng([seed, SPLITS[split], _DATASET_TAG])
    keep_temporaries_on_heap()
    labels = rng.permutation(np.arange(n, dtype=np.int64) % N_CLASSES)
    raised = _choose_fingers(labels, rng)  # (n, 5) bool
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        images[start:stop] = _render(raised[start:stop], rng)
    return images, labels


def _choose_fingers(labels: Array, rng: np.random.Generator) -> Array:
    """Pick which fingers are raised for each label: (n, 5) bool, thumb first."""
    raised = np.zeros((labels.size, 5), dtype=bool)
    pick = rng.random(labels.size)
    for count, poses in _POSES.items():
        edges = np.cumsum([p for _, p in poses])
        choice = np.minimum(np.searchsorted(edges, pick, side="right"), len(poses) - 1)
        for k, (fingers, _) in enumerate(poses):
            raised[(labels == count) & (choice == k)] = fingers
    return raised


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

_PIX = np.arange(SIZE, dtype=F32) - (SIZE - 1) / 2  # pixel centres, origin in the middle


def _u(rng: np.random.Generator, m: int, lo: float, hi: float, k: int | None = None) -> Array:
    """Draw uniform per-sample parameters shaped (m, 1, 1), or (m, k, 1, 1) for k parts."""
    shape = (m, 1, 1) if k is None else (m, k, 1, 1)
    return rng.uniform(lo, hi, shape).astype(F32)


def _capsule(x: Array, y: Array, ax, ay, bx, by, r) -> Array:
    """Distance to the segment from (ax, ay) to (bx, by) thickened by radius r (negative inside)."""
    dx, dy = bx - ax, by - ay
    px, py = x - ax, y - ay
    h = np.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    ex, ey = px - h * dx, py - h * dy
    return np.sqrt(ex * ex + ey * ey) - r


def _ellipse(x: Array, y: Array, cx, cy, rx, ry) -> Array:
    """Approximate distance to the ellipse centred (cx, cy) with radii rx, ry (negative inside)."""
    ex, ey = (x - cx) / rx, (y - cy) / ry
    return (np.sqrt(ex * ex + ey * ey) - 1.0) * np.minimum(rx, ry)


def _render(raised: Array, rng: np.random.Generator) -> Array:
    """Render one chunk of hands with the given raised fingers: uint8 (m, 64, 64, 3)."""
    m = raised.shape[0]
    # Frame: hand coordinates (x right, y down, palm centre at 0, fingertips near y = -28) to pixels.
    scale = _u(rng, m, 0.9, 1.15)
    side = np.where(rng.random((m, 1, 1)) < 0.5, F32(-1.0), F32(1.0))  # left or right hand
    angle = np.clip(rng.normal(0.0, 0.15, (m, 1, 1)), -0.4, 0.4).astype(F32)
    tx, ty = _u(rng, m, -4.0, 4.0), _u(rng, m, 1.0, 7.0)
    cos, sin = np.cos(angle), np.sin(angle)
    col = _PIX[None, None, :] - tx  # (m, 1, 64)
    row = _PIX[None, :, None] - ty  # (m, 64, 1)
    x = (side * cos / scale) * col + (side * sin / scale) * row  # (m, 64, 64)
    y = (cos / scale) * row - (sin / scale) * col  # (m, 64, 64)
    soft = scale / _u(rng, m, 0.8, 1.8)  # distance (hand units) to alpha slope

    tone = _u(rng, m, 0.0, 1.0)
    skin = _SKIN_LIGHT + (_SKIN_DARK - _SKIN_LIGHT) * tone[:, 0]  # (m, 3)
    skin = skin * _u(rng, m, 0.9, 1.1)[:, 0] + rng.normal(0.0, 0.02, (m, 3)).astype(F32)  # (m, 3)

    # Parts from back to front, composited "over" what is drawn so far: shade is the hand's
    # brightness premultiplied by its coverage alpha; each part is darker towards its edges.
    shade = np.zeros((m, SIZE, SIZE), F32)
    alpha = np.zeros((m, SIZE, SIZE), F32)

    def paint(dist: Array, depth) -> None:
        """Lay one part over the hand; depth is how far inside the part its shading reaches full light."""
        a = np.clip(0.5 - dist * soft, 0.0, 1.0)
        light = 0.55 + 0.45 * np.clip(-dist / depth, 0.0, 1.0)
        shade[...] = shade + a * (light - shade)
        alpha[...] = alpha + a * (1.0 - alpha)

    palm_rx, palm_ry = _u(rng, m, 10.0, 12.0), _u(rng, m, 11.0, 13.0)
    wrist = _u(rng, m, 6.5, 8.0)
    arm_d = np.maximum(np.abs(x) - (wrist + 0.08 * (y - 10.0)), 8.0 - y)  # forearm to the bottom edge
    paint(np.minimum(_ellipse(x, y, 0.0, 0.0, palm_rx, palm_ry), arm_d), F32(6.0))

    width = palm_rx / 10.8  # the fingers spread with the palm
    spread = _u(rng, m, 0.05, 0.22)
    length = _u(rng, m, 0.85, 1.12)[:, None] * _u(rng, m, 0.92, 1.08, 4)  # (m, 4, 1, 1)
    radius = _u(rng, m, 0.9, 1.2)[:, None] * _u(rng, m, 0.92, 1.08, 4)  # (m, 4, 1, 1)
    fold = _u(rng, m, 2.5, 5.0, 4)
    up = raised[:, 1:, None, None]  # (m, 4, 1, 1)
    for i in range(4):  # index to pinky; a folded finger is a stub pointing down over the palm
        theta = (i - 1.5) * spread + rng.normal(0.0, 0.04, (m, 1, 1)).astype(F32)
        bx, by = _BASE_X[i] * width, _BASE_Y[i] * palm_ry / 12.0
        ln = _LENGTH[i] * length[:, i]
        tip_x = np.where(up[:, i], bx + ln * np.sin(theta), bx)
        tip_y = np.where(up[:, i], by - ln * np.cos(theta), by + fold[:, i])
        r = _RADIUS[i] * radius[:, i] * np.where(up[:, i], F32(1.0), F32(1.15))
        paint(_capsule(x, y, bx, by, tip_x, tip_y, r), r)

    # Thumb: from the lower side of the palm, raised outwards or folded across the palm.
    thumb_up = raised[:, 0, None, None]  # (m, 1, 1)
    base_x, base_y = -palm_rx * 0.8, _u(rng, m, 0.0, 4.0)
    reach = _u(rng, m, 0.55, 1.15)  # radians from vertical, outwards
    t_len = _u(rng, m, 12.0, 15.5)
    tip_x = np.where(thumb_up, base_x - t_len * np.sin(reach), _u(rng, m, -1.0, 4.0))
    tip_y = np.where(thumb_up, base_y - t_len * np.cos(reach), _u(rng, m, -7.0, -2.0))
    t_r = _u(rng, m, 2.7, 3.3)
    paint(_capsule(x, y, base_x, base_y, tip_x, tip_y, t_r), t_r)

    # Lighting: a soft gradient in a random direction over the whole picture.
    phi = _u(rng, m, 0.0, 6.2832)
    gain = _u(rng, m, 0.0, 0.35) / SIZE
    light_rows = 1.0 + gain * np.sin(phi) * _PIX[None, :, None]  # (m, 64, 1)
    light_cols = gain * np.cos(phi) * _PIX[None, None, :]  # (m, 1, 64)
    lighting = light_rows + light_cols  # (m, 64, 64)

    # Background: a colour, a gradient, and for some a low-frequency texture.
    bg_col = _background_colours(m, rng)  # (m, 3)
    textured = rng.random((m, 1, 1)) < 0.5
    amp = np.where(textured, _u(rng, m, 0.04, 0.16), F32(0.0))
    fx, fy = _u(rng, m, 0.05, 0.5), _u(rng, m, 0.05, 0.5)
    wave = np.sin(fy * _PIX[None, :, None] + _u(rng, m, 0, 6.3)) * np.sin(fx * _PIX[None, None, :] + _u(rng, m, 0, 6.3))
    bg = (lighting + amp * wave) * (1.0 - alpha)  # (m, 64, 64)
    hand = shade * lighting  # (m, 64, 64)

    noise_sd = _u(rng, m, 0.01, 0.04) * (255.0 * np.sqrt(12.0))
    out = np.empty((m, SIZE, SIZE, 3), np.uint8)
    for c in range(3):
        value = bg * (bg_col[:, c, None, None] * 255.0) + hand * (skin[:, c, None, None] * 255.0)
        value += (rng.random((m, SIZE, SIZE), dtype=F32) - F32(0.5)) * noise_sd
        out[..., c] = np.clip(value + 0.5, 0.0, 255.0)
    return out


def _background_colours(m: int, rng: np.random.Generator) -> Array:
    """Background colours (m, 3) in [0, 1]: mostly light walls, some coloured or darker ones."""
    grey = rng.uniform(0.45, 0.98, (m, 1))
    tint = rng.normal(0.0, 0.08, (m, 3))
    return np.clip(grey + tint, 0.05, 1.0).astype(F32)
