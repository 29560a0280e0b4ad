"""Prepare MNIST, FashionMNIST and SIGNS on disk where the assignments' code finds them.

Layout under a data folder::

    <data>/public/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
    <data>/public/FashionMNIST/raw/   (the same four names)
    <data>/public/sign_data/{X,Y}_{train,val,test}.npy
    <data>/hidden/<dataset>/{images,labels}.npy   grader-only, never mounted in a sandbox
    <data>/hidden/seed                            the secret seed of the hidden splits
    <data>/manifest.json                          where each dataset came from, counts, sha256

``public/`` is what a sandbox sees: ``torchvision.datasets.MNIST(public, download=True)``
finds its raw files and never downloads, and ``np.load("sign_data/X_train.npy")`` works
from inside it.

Sources, per dataset: files the user points at (``from_dir``), torchvision's own
download, or the deterministic synthetic stand-in; ``source="auto"`` tries them in
that order. Files from a folder or a download are validated with the readers of
:mod:`harness.data.formats`; a dataset present in ``from_dir`` but invalid is an
error, never silently replaced.

Hidden evaluation split: for synthetic data it is drawn from the hidden pool of the
generator with the secret hidden seed. For real data there is no unseen pool, so it
is derived from the real test images by a seeded light random affine (rotation,
scale, sub-pixel shift) and shuffled, keeping each image's label: its pixels differ
from the public test split and its order does not line up with it, but a student
holding the public test labels could still match images by similarity, so on real
data the hidden split guards against reported (not computed) metrics, not against
a determined cheat. The public files never depend on the hidden seed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import secrets
import shutil
import socket
import tempfile
import urllib.parse
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from harness import __version__
from harness.contract import DATASETS, TORCHVISION_FOLDERS
from harness.data import formats
from harness.errors import DataError, DownloadUnavailable

SPLITS = {"mnist": ("train", "test"), "fashionmnist": ("train", "test"), "signs": ("train", "val", "test")}
"""The public splits of each dataset; every dataset also has a grader-only "hidden" split."""

SOURCES = ("auto", "files", "download", "synthetic")
"""Where a dataset can come from; "auto" tries files, then a download, then synthetic."""

FULL_SIZES = {
    "mnist": {"train": 60_000, "test": 10_000, "hidden": 10_000},
    "fashionmnist": {"train": 60_000, "test": 10_000, "hidden": 10_000},
    "signs": {"train": 960, "val": 120, "test": 120, "hidden": 120},
}
"""Images per split of the synthetic datasets, as in the real ones."""

SMALL_SIZES = {
    "mnist": {"train": 6_000, "test": 1_000, "hidden": 1_000},
    "fashionmnist": {"train": 6_000, "test": 1_000, "hidden": 1_000},
    "signs": FULL_SIZES["signs"],
}
"""Images per split with ``small=True`` (tests and quick checks); SIGNS is tiny anyway."""

NUM_CLASSES = {"mnist": 10, "fashionmnist": 10, "signs": 6}
"""Classes per dataset: labels lie in 0..NUM_CLASSES-1."""

"""torchvision's class name, which is also its folder under the root."""

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""(images, labels) file names per split in torchvision's raw folder."""

SIGNS_FILES = {split: (f"X_{split}.npy", f"Y_{split}.npy") for split in SPLITS["signs"]}
"""(images, labels) file names per split of SIGNS."""

SIGNS_IMAGE_SHAPE = (64, 64, 3)
"""One SIGNS image: 64x64 RGB."""

_GENERATORS = {"mnist": "harness.data.mnist", "fashionmnist": "harness.data.fashion", "signs": "harness.data.signs"}
_HIDDEN_TAG = 0x48494444  # keeps the hidden perturbation's stream apart from everything else
_REACH_TIMEOUT_S = 3.0

Progress = Callable[[str], None]


def public_dir(data_dir: Path) -> Path:
    """The folder a sandbox sees: every public split, in the assignments' layouts."""
    return Path(data_dir) / "public"


def hidden_dir(data_dir: Path) -> Path:
    """The grader-only folder: hidden evaluation splits and the hidden seed."""
    return Path(data_dir) / "hidden"


def manifest_path(data_dir: Path) -> Path:
    """Where the manifest of a data folder lives."""
    return Path(data_dir) / "manifest.json"


def read_manifest(data_dir: Path) -> dict:
    """The manifest prepare() wrote: per dataset its source, seed, counts and file hashes."""
    path = manifest_path(data_dir)
    if not path.is_file():
        raise DataError(
            f"{data_dir}: no prepared data here (manifest.json is missing); run `gradebench data prepare` first"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error}); run `gradebench data prepare` again") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("datasets"), dict):
        raise DataError(f"{path}: has no 'datasets' table; run `gradebench data prepare` again")
    return manifest


def load_split(data_dir: Path, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one prepared split: uint8 images ``(N, 28, 28)`` or ``(N, 64, 64, 3)`` and int64 labels ``(N,)``."""
    _check_dataset(dataset)
    if split not in (*SPLITS[dataset], "hidden"):
        raise DataError(f"{dataset} has no split {split!r}; its splits: {', '.join((*SPLITS[dataset], 'hidden'))}")
    manifest = read_manifest(data_dir)
    if dataset not in manifest["datasets"]:
        prepared = ", ".join(manifest["datasets"]) or "none"
        raise DataError(
            f"{data_dir}: {dataset} is not prepared (prepared: {prepared}); "
            f"run `gradebench data prepare -d {dataset}` first"
        )
    data_dir = Path(data_dir)
    classes = NUM_CLASSES[dataset]
    if split == "hidden":
        folder = hidden_dir(data_dir) / dataset
        shape = SIGNS_IMAGE_SHAPE if dataset == "signs" else formats.MNIST_IMAGE_SIZE
        return formats.read_npy_pair(
            folder / "images.npy", folder / "labels.npy", root=data_dir, image_shape=shape, num_classes=classes
        )
    if dataset == "signs":
        folder = public_dir(data_dir) / "sign_data"
        x_name, y_name = SIGNS_FILES[split]
        return formats.read_npy_pair(
            folder / x_name, folder / y_name, root=data_dir, image_shape=SIGNS_IMAGE_SHAPE, num_classes=classes
        )
    folder = public_dir(data_dir) / TORCHVISION_FOLDERS[dataset] / "raw"
    images_name, labels_name = IDX_FILES[split]
    return formats.read_idx_pair(folder / images_name, folder / labels_name, root=data_dir, num_classes=classes)


def prepare(
    data_dir: Path,
    *,
    datasets: Sequence[str] = DATASETS,
    source: str = "auto",
    from_dir: Path | None = None,
    seed: int = 0,
    hidden_seed: int | None = None,
    small: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> dict:
    """Write the chosen datasets and their hidden splits under ``data_dir``; return the manifest.

    ``source``: "files" (from ``from_dir``), "download", "synthetic", or "auto" (files in
    ``from_dir`` if it holds the dataset, else a download, else synthetic). ``seed`` fixes
    the synthetic public splits (same seed, same bytes); ``hidden_seed`` the hidden splits
    (default: the one kept in ``<data>/hidden/seed``, else a new secret one, stored there).
    ``small`` makes the synthetic MNIST and FashionMNIST 6,000 / 1,000 images; real files
    are always used whole.
    """
    report = on_progress or (lambda line: None)
    for dataset in datasets:
        _check_dataset(dataset)
    if source not in SOURCES:
        raise DataError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    if source == "files" and from_dir is None:
        raise DataError("source 'files' needs a folder to read from (--from)")
    if from_dir is not None and not Path(from_dir).is_dir():
        raise DataError(f"{from_dir}: the folder to read real files from does not exist")
    if seed < 0:
        raise DataError(f"the seed must be a whole number >= 0, got {seed}")
    data_dir = Path(data_dir)
    secret = _resolve_hidden_seed(data_dir, hidden_seed)
    sizes = SMALL_SIZES if small else FULL_SIZES

    manifest = _existing_manifest(data_dir)
    for dataset in datasets:
        entry = _prepare_one(data_dir, dataset, source, from_dir, seed, secret, sizes[dataset], small, report)
        manifest["datasets"][dataset] = entry
        manifest["gradebench"] = __version__
        manifest["created"] = entry["created"]
        formats.atomic_write_bytes(manifest_path(data_dir), (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


# --------------------------------------------------------------------------- one dataset


def _prepare_one(
    data_dir: Path,
    dataset: str,
    source: str,
    from_dir: Path | None,
    seed: int,
    hidden_seed: int,
    sizes: dict[str, int],
    small: bool,
    report: Progress,
) -> dict:
    """Obtain one dataset's public and hidden splits, write them, and return its manifest entry."""
    splits, kind, origin = _obtain(dataset, source, from_dir, seed, sizes, report)
    if kind == "synthetic":
        hidden = _generator(dataset).synthesize("hidden", sizes["hidden"], hidden_seed)
        hidden_note = "drawn from the generator's hidden pool with the hidden seed"
    else:
        hidden = derive_hidden(*splits["test"], seed=hidden_seed)
        hidden_note = "the real test images under a seeded light random affine, shuffled"
    report(f"{dataset}: hidden split: {len(hidden[1]):,} images, {hidden_note}")

    files = _write_public(data_dir, dataset, splits)
    hidden_files = _write_hidden(data_dir, dataset, hidden)
    report(f"{dataset}: wrote {len(files)} public files under {_public_folder_name(dataset)}")
    counts = {split: int(len(labels)) for split, (_, labels) in splits.items()}
    counts["hidden"] = int(len(hidden[1]))
    return {
        "source": kind,
        "origin": origin,
        "seed": seed if kind == "synthetic" else None,
        "small": small if kind == "synthetic" else False,
        "counts": counts,
        "hidden": hidden_note,
        "files": files,
        "hidden_files": hidden_files,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "gradebench": __version__,
    }


def _obtain(
    dataset: str, source: str, from_dir: Path | None, seed: int, sizes: dict[str, int], report: Progress
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str, str]:
    """The public splits of one dataset, the kind of source they came from, and where exactly."""
    if source in ("files", "auto") and from_dir is not None:
        folder = find_source_folder(dataset, Path(from_dir))
        if folder is not None:
            report(f"{dataset}: reading files from {folder}")
            return read_source_folder(dataset, folder, root=Path(from_dir)), "files", str(folder.resolve())
        if source == "files":
            raise DataError(f"{from_dir}: no {dataset} files here; expected {_expected_layout(dataset)}")
        report(f"{dataset}: not in {from_dir}, trying a download")
    if source in ("download", "auto"):
        try:
            splits, origin = download(dataset, report)
            return splits, "download", origin
        except DownloadUnavailable as error:
            if source == "download":
                raise
            report(f"{error}, using the synthetic stand-in")
    counts = ", ".join(f"{split} {sizes[split]:,}" for split in SPLITS[dataset])
    report(f"{dataset}: synthesizing {counts} (seed {seed})")
    generator = _generator(dataset)
    splits = {split: generator.synthesize(split, sizes[split], seed) for split in SPLITS[dataset]}
    return splits, "synthetic", f"{_GENERATORS[dataset]} (synthetic stand-in)"


def _generator(dataset: str):
    """The module that synthesizes ``dataset`` (``synthesize(split, n, seed)``)."""
    return importlib.import_module(_GENERATORS[dataset])


# --------------------------------------------------------------------------- real files


def _expected_layout(dataset: str) -> str:
    """Where files of ``dataset`` are looked for inside a --from folder, for messages."""
    if dataset == "signs":
        return "sign_data/X_train.npy, Y_train.npy, X_val.npy, ... (or those six .npy files directly)"
    folder = TORCHVISION_FOLDERS[dataset]
    return f"{folder}/raw/train-images-idx3-ubyte (or {folder}/<name>, .gz allowed) and the other three files"


def _source_candidates(dataset: str, from_dir: Path) -> tuple[Path, ...]:
    """Folders inside ``from_dir`` that may hold ``dataset``, most specific first."""
    if dataset == "signs":
        return (from_dir / "sign_data", from_dir)
    folder = from_dir / TORCHVISION_FOLDERS[dataset]
    return (folder / "raw", folder)


def _source_names(dataset: str) -> list[str]:
    """Every file name of ``dataset``'s splits, as the assignments name them."""
    table = SIGNS_FILES if dataset == "signs" else IDX_FILES
    return [name for pair in table.values() for name in pair]


def find_source_folder(dataset: str, from_dir: Path) -> Path | None:
    """The folder in ``from_dir`` that holds any file of ``dataset``, or None if none does."""
    for folder in _source_candidates(dataset, from_dir):
        for name in _source_names(dataset):
            if (folder / name).exists() or (dataset != "signs" and (folder / f"{name}.gz").exists()):
                return folder
    return None


def read_source_folder(dataset: str, folder: Path, *, root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read and validate every split of ``dataset`` from ``folder``; messages name files relative to ``root``."""
    splits = {}
    for split in SPLITS[dataset]:
        if dataset == "signs":
            x_name, y_name = SIGNS_FILES[split]
            images, labels = formats.read_npy_pair(
                folder / x_name, folder / y_name, root=root, image_shape=SIGNS_IMAGE_SHAPE, num_classes=6
            )
        else:  # one file at a time, so the first problem found is the one reported
            images_name, labels_name = IDX_FILES[split]
            images_path = _plain_or_gz(folder / images_name, root)
            images = formats.read_idx_images(images_path, root=root)
            labels_path = _plain_or_gz(folder / labels_name, root)
            labels = formats.read_idx_labels(labels_path, root=root, num_classes=10)
            formats.check_counts(
                images, labels, formats.display_name(images_path, root), formats.display_name(labels_path, root)
            )
        if len(labels) == 0:
            raise DataError(f"{formats.display_name(folder, root)}: the {split} split holds no images")
        splits[split] = (images, labels)
    return splits


def _plain_or_gz(path: Path, root: Path) -> Path:
    """``path`` if it exists, else ``path.gz``; DataError naming both if neither does."""
    if path.exists():
        return path
    compressed = path.with_name(f"{path.name}.gz")
    if compressed.exists():
        return compressed
    raise DataError(f"{formats.display_name(path, root)}: file is missing (looked for it with and without .gz)")


# --------------------------------------------------------------------------- download


def check_reachable(urls: Sequence[str], timeout: float = _REACH_TIMEOUT_S) -> None:
    """Raise DownloadUnavailable unless one of ``urls``' hosts accepts a connection within ``timeout`` s."""
    reasons = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or url
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as error:
            reasons.append(f"{host}:{port}: {error}")
    raise DownloadUnavailable(f"cannot reach {'; '.join(reasons) or 'any download site'}")


def _torchvision_class(dataset: str):
    """torchvision's dataset class for ``dataset`` (its downloader and its folder name)."""
    import torchvision.datasets

    return getattr(torchvision.datasets, TORCHVISION_FOLDERS[dataset])


def download(dataset: str, report: Progress) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """Download ``dataset`` with torchvision into a temporary folder and validate it like --from files."""
    if dataset == "signs":
        raise DownloadUnavailable(
            "signs: no public download exists for the SIGNS hand-sign data; "
            f"pass --from with a folder holding {_expected_layout('signs')}"
        )
    cls = _torchvision_class(dataset)
    try:
        check_reachable(list(cls.mirrors))
    except DownloadUnavailable as error:
        raise DownloadUnavailable(f"{dataset}: no network ({error})") from None
    report(f"{dataset}: downloading with torchvision from {cls.mirrors[0]}")
    workdir = Path(tempfile.mkdtemp(prefix=f"gradebench-{dataset}-"))
    try:
        try:
            cls(str(workdir), train=True, download=True)
        except Exception as error:  # torchvision raises RuntimeError, URLError, OSError...
            raise DownloadUnavailable(f"{dataset}: download failed ({type(error).__name__}: {error})") from None
        folder = workdir / TORCHVISION_FOLDERS[dataset] / "raw"
        return read_source_folder(dataset, folder, root=workdir), cls.mirrors[0]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- hidden split


def derive_hidden(images: np.ndarray, labels: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A hidden split made from real test images: a seeded light random affine of each, shuffled.

    Each image is rotated (about 4 degrees), scaled (up to 6%) and shifted by 0.3 to 1.2
    pixels, resampled bilinearly with the border extended; labels follow their images.
    Works for ``(N, H, W)`` and ``(N, H, W, C)`` uint8 images.
    """
    import torch  # here, not at the top: the grader reads prepared data (load_split) without torch
    import torch.nn.functional as F

    n = len(images)
    rng = np.random.default_rng([seed, _HIDDEN_TAG, n])
    order = rng.permutation(n)
    angle = np.deg2rad(rng.normal(0.0, 4.0, n).clip(-8.0, 8.0))
    scale = rng.uniform(0.94, 1.06, n)
    shift_px = rng.uniform(0.3, 1.2, (n, 2)) * rng.choice([-1.0, 1.0], (n, 2))
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    height, width = images.shape[1:3]
    theta = np.empty((n, 2, 3))
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    theta[:, 0, 2] = shift_px[:, 0] * 2 / width
    theta[:, 1, 2] = shift_px[:, 1] * 2 / height
    pixels = torch.from_numpy(images[order])
    pixels = pixels.unsqueeze(1) if pixels.dim() == 3 else pixels.permute(0, 3, 1, 2)  # (N, C, H, W)
    out = torch.empty(pixels.shape, dtype=torch.uint8)
    for start in range(0, n, 4096):
        part = slice(start, start + 4096)
        batch = pixels[part].float()  # (B, C, H, W)
        grid = F.affine_grid(torch.from_numpy(theta[part]).float(), list(batch.shape), align_corners=False)
        warped = F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out[part] = warped.clamp_(0, 255).add_(0.5).to(torch.uint8)
    out = out.squeeze(1) if images.ndim == 3 else out.permute(0, 2, 3, 1)
    return np.ascontiguousarray(out.numpy()), labels[order].astype(np.int64)


def _resolve_hidden_seed(data_dir: Path, hidden_seed: int | None) -> int:
    """The hidden seed to use: the one given (then stored), the stored one, or a new secret one."""
    path = hidden_dir(data_dir) / "seed"
    if hidden_seed is None and path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        if not text.isdigit():
            raise DataError(
                f"{formats.display_name(path, data_dir)}: expected the hidden seed as a whole number, "
                f"found {text[:40]!r}"
            )
        return int(text)
    if hidden_seed is not None and hidden_seed < 0:
        raise DataError(f"the hidden seed must be a whole number >= 0, got {hidden_seed}")
    chosen = secrets.randbits(63) if hidden_seed is None else hidden_seed
    formats.atomic_write_bytes(path, f"{chosen}\n".encode(), mode=0o600)
    return chosen


# --------------------------------------------------------------------------- writing


def _public_folder_name(dataset: str) -> str:
    """The folder under public/ that holds ``dataset``."""
    return "public/sign_data" if dataset == "signs" else f"public/{TORCHVISION_FOLDERS[dataset]}/raw"


def _write_hashed(data_dir: Path, path: Path, data: bytes) -> tuple[str, str]:
    """Write ``data`` atomically; return (path relative to ``data_dir``, sha256 of the bytes)."""
    formats.atomic_write_bytes(path, data)
    return path.relative_to(data_dir).as_posix(), hashlib.sha256(data).hexdigest()


def _write_public(data_dir: Path, dataset: str, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, str]:
    """Write the public splits in the assignment's format; return {relative path: sha256}."""
    files = {}
    folder = data_dir / _public_folder_name(dataset)
    for split, (images, labels) in splits.items():
        if dataset == "signs":
            x_name, y_name = SIGNS_FILES[split]
            encoded = [(x_name, formats.npy_bytes(images)), (y_name, formats.npy_bytes(labels.astype(np.int64)))]
        else:
            images_name, labels_name = IDX_FILES[split]
            encoded = [
                (images_name, formats.idx_bytes(images, formats.IMAGES_MAGIC)),
                (labels_name, formats.idx_bytes(labels.astype(np.uint8), formats.LABELS_MAGIC)),
            ]
        for name, data in encoded:
            relative, digest = _write_hashed(data_dir, folder / name, data)
            files[relative] = digest
    return files


def _write_hidden(data_dir: Path, dataset: str, hidden: tuple[np.ndarray, np.ndarray]) -> dict[str, str]:
    """Write the hidden split as .npy under hidden/<dataset>/; return {relative path: sha256}."""
    images, labels = hidden
    folder = hidden_dir(data_dir) / dataset
    files = {}
    for name, array in (("images.npy", images), ("labels.npy", labels.astype(np.int64))):
        relative, digest = _write_hashed(data_dir, folder / name, formats.npy_bytes(array))
        files[relative] = digest
    return files


def _existing_manifest(data_dir: Path) -> dict:
    """The manifest already in ``data_dir`` (other datasets' entries are kept), or a fresh one."""
    if manifest_path(data_dir).is_file():
        try:
            return read_manifest(data_dir)
        except DataError:
            pass  # unreadable: replaced by a fresh one below
    return {"gradebench": __version__, "created": None, "datasets": {}}


def _check_dataset(dataset: str) -> None:
    """Raise DataError naming the known datasets if ``dataset`` is not one of them."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
