"""Read, write and validate the dataset file formats the assignments use.

MNIST and FashionMNIST come as IDX files (the format of LeCun's MNIST site, which
torchvision reads): a big-endian header, a magic number ``0x000008NN`` (unsigned
bytes, NN dimensions), one 4-byte size per dimension, then the raw bytes. Images are
``2051`` (3 dimensions: N x 28 x 28), labels ``2049`` (1 dimension: N). SIGNS comes as
``.npy`` files: ``X`` uint8 ``(N, 64, 64, 3)`` and ``Y`` integer ``(N,)`` in 0..5.

Every reader validates what it reads and raises :class:`DataError` naming the file,
shown relative to the folder the user gave (``root``), and saying what is wrong. The
same readers check ``--from`` sources, downloads and prepared data. Writers are
atomic: they write a temporary file in the target folder and rename it into place.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from harness.errors import DataError

IMAGES_MAGIC = 2051
"""Magic number of an IDX images file: unsigned bytes, 3 dimensions (0x00000803)."""

LABELS_MAGIC = 2049
"""Magic number of an IDX labels file: unsigned bytes, 1 dimension (0x00000801)."""

MNIST_IMAGE_SIZE = (28, 28)
"""Height and width of an MNIST or FashionMNIST image."""

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX type byte -> element type (all big-endian)."""

_KIND = {IMAGES_MAGIC: "an images file", LABELS_MAGIC: "a labels file"}
_NPY_MAGIC = b"\x93NUMPY"
_GZIP_MAGIC = b"\x1f\x8b"


def display_name(path: Path, root: Path | None) -> str:
    """How to name ``path`` in a message: relative to ``root`` when it lies inside it."""
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


# --------------------------------------------------------------------------- writing


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that a crash never leaves a half-written file under that name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, mode)  # mkstemp makes it private (0o600); data files are for every reader
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """Encode a uint8 array as an IDX file with the given magic number."""
    ndim = magic & 0xFF
    if array.dtype != np.uint8:
        raise ValueError(f"IDX files written here hold uint8, got {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"magic {magic} means {ndim} dimension(s), got an array of shape {array.shape}")
    header = struct.pack(f">I{ndim}I", magic, *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def _write_idx(path: Path, data: bytes) -> None:
    """Write IDX bytes, gzip-compressed (reproducibly: no timestamp) when the name ends in .gz."""
    if Path(path).suffix == ".gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    atomic_write_bytes(path, data)


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """Write uint8 images ``(N, 28, 28)`` as an IDX images file (gzip when the name ends in .gz)."""
    if images.ndim != 3 or images.shape[1:] != MNIST_IMAGE_SIZE:
        raise ValueError(f"expected images of shape (N, 28, 28), got {images.shape}")
    _write_idx(path, idx_bytes(images, IMAGES_MAGIC))


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """Write uint8 labels ``(N,)`` as an IDX labels file (gzip when the name ends in .gz)."""
    _write_idx(path, idx_bytes(labels, LABELS_MAGIC))


def npy_bytes(array: np.ndarray) -> bytes:
    """Encode an array as the bytes of a ``.npy`` file (no pickling)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write an array as a ``.npy`` file, atomically."""
    atomic_write_bytes(path, npy_bytes(array))


# --------------------------------------------------------------------------- IDX reading


def _read_file(path: Path, shown: str) -> bytes:
    """The file's bytes, decompressed if it is named ``.gz``; missing and empty files are errors."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{shown}: file is missing")
    if not path.is_file():
        raise DataError(f"{shown}: is a folder, expected a file")
    data = path.read_bytes()
    if path.suffix == ".gz":
        if not data:
            raise DataError(f"{shown}: file is empty (0 bytes)")
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{shown}: not a valid gzip file ({error})") from None
    if not data:
        raise DataError(f"{shown}: file is empty (0 bytes)")
    return data


def _what_it_looks_like(data: bytes) -> str:
    """A hint about what a file with a wrong magic number might be instead, or ''."""
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic in _KIND:
        return f"; this looks like {_KIND[magic]}"
    if data.startswith(_GZIP_MAGIC):
        return "; this looks like a gzip file: name it with .gz or decompress it"
    if data.startswith(_NPY_MAGIC):
        return "; this looks like a numpy .npy file"
    return ""


def _parse_idx(data: bytes, shown: str, expected_magic: int | None) -> np.ndarray:
    """Parse IDX bytes into an array, checking the magic number and that the size matches the header."""
    if len(data) < 4:
        raise DataError(f"{shown}: truncated: {len(data)} byte(s), too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{shown}: magic number {magic}, expected {expected_magic} ({_KIND[expected_magic]})"
            f"{_what_it_looks_like(data)}"
        )
    type_code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or type_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{shown}: not an IDX file (magic number {magic:#010x}){_what_it_looks_like(data)}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"{shown}: truncated: {len(data)} bytes, too short for the {header_size}-byte header of a {ndim}-d IDX file"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_size
    dims = " x ".join(str(size) for size in shape)
    if found < expected:
        raise DataError(
            f"{shown}: truncated: the header says {dims} values ({expected:,} bytes of data) "
            f"but the file holds only {found:,} bytes after the header"
        )
    if found > expected:
        raise DataError(
            f"{shown}: {found - expected:,} bytes more than the header's {dims} values ({expected:,} bytes) "
            "account for: the file is corrupt or not what its header says"
        )
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_size)
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def read_idx(path: Path, *, root: Path | None = None) -> np.ndarray:
    """Read any IDX file (plain or ``.gz``) into an array; DataError if it is not a complete IDX file."""
    shown = display_name(path, root)
    return _parse_idx(_read_file(path, shown), shown, expected_magic=None)


def read_idx_images(path: Path, *, root: Path | None = None) -> np.ndarray:
    """Read an IDX images file: uint8 ``(N, 28, 28)``; DataError naming the file if it is not one."""
    shown = display_name(path, root)
    images = _parse_idx(_read_file(path, shown), shown, expected_magic=IMAGES_MAGIC)
    if images.shape[1:] != MNIST_IMAGE_SIZE:
        height, width = images.shape[1:]
        raise DataError(f"{shown}: images are {height}x{width} pixels, expected 28x28")
    return images


def read_idx_labels(path: Path, *, root: Path | None = None, num_classes: int = 10) -> np.ndarray:
    """Read an IDX labels file: int64 ``(N,)`` in ``0..num_classes-1``; DataError naming the file if not."""
    shown = display_name(path, root)
    labels = _parse_idx(_read_file(path, shown), shown, expected_magic=LABELS_MAGIC)
    check_label_range(labels, shown, num_classes)
    return labels.astype(np.int64)


def read_idx_pair(
    images_path: Path, labels_path: Path, *, root: Path | None = None, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Read matching IDX images and labels files; their counts must agree."""
    images = read_idx_images(images_path, root=root)
    labels = read_idx_labels(labels_path, root=root, num_classes=num_classes)
    check_counts(images, labels, display_name(images_path, root), display_name(labels_path, root))
    return images, labels


# --------------------------------------------------------------------------- .npy reading


def read_npy(path: Path, *, root: Path | None = None) -> np.ndarray:
    """Read a ``.npy`` file without ever unpickling; DataError naming the file if it is not a plain array."""
    shown = display_name(path, root)
    data = _read_file(path, shown)
    if not data.startswith(_NPY_MAGIC):
        raise DataError(f"{shown}: not a numpy .npy file (it does not start with the .npy magic string)")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error):
            raise DataError(f"{shown}: holds pickled Python objects, expected a plain numeric array") from None
        raise DataError(f"{shown}: truncated or corrupt .npy file ({error})") from None
    except (EOFError, OSError) as error:
        raise DataError(f"{shown}: truncated or corrupt .npy file ({error})") from None


def read_npy_images(path: Path, *, root: Path | None = None, image_shape: tuple[int, ...] = (64, 64, 3)) -> np.ndarray:
    """Read a ``.npy`` of uint8 images ``(N, *image_shape)``; DataError naming the file if it is not one."""
    shown = display_name(path, root)
    images = read_npy(path, root=root)
    expected = "(N, " + ", ".join(str(size) for size in image_shape) + ")"
    if images.ndim != 1 + len(image_shape) or images.shape[1:] != tuple(image_shape):
        raise DataError(f"{shown}: images have shape {images.shape}, expected {expected}")
    if images.dtype != np.uint8:
        raise DataError(f"{shown}: images have dtype {images.dtype}, expected uint8 (pixel values 0..255)")
    return images


def read_npy_labels(path: Path, *, root: Path | None = None, num_classes: int = 6) -> np.ndarray:
    """Read a ``.npy`` of integer labels ``(N,)`` in ``0..num_classes-1``, as int64."""
    shown = display_name(path, root)
    labels = read_npy(path, root=root)
    if labels.ndim != 1:
        raise DataError(f"{shown}: labels have shape {labels.shape}, expected (N,)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{shown}: labels have dtype {labels.dtype}, expected integers (int64)")
    check_label_range(labels, shown, num_classes)
    return labels.astype(np.int64)


def read_npy_pair(
    images_path: Path,
    labels_path: Path,
    *,
    root: Path | None = None,
    image_shape: tuple[int, ...] = (64, 64, 3),
    num_classes: int = 6,
) -> tuple[np.ndarray, np.ndarray]:
    """Read matching ``.npy`` images and labels; their counts must agree."""
    images = read_npy_images(images_path, root=root, image_shape=image_shape)
    labels = read_npy_labels(labels_path, root=root, num_classes=num_classes)
    check_counts(images, labels, display_name(images_path, root), display_name(labels_path, root))
    return images, labels


# --------------------------------------------------------------------------- shared checks


def check_label_range(labels: np.ndarray, shown: str, num_classes: int) -> None:
    """Raise DataError naming ``shown`` if any label lies outside ``0..num_classes-1``."""
    bad = (labels < 0) | (labels >= num_classes)
    if not bad.any():
        return
    values, counts = np.unique(labels[bad], return_counts=True)
    listed = ", ".join(
        f"{value} ({count:,} time{'' if count == 1 else 's'})"
        for value, count in zip(values[:5].tolist(), counts[:5].tolist())
    )
    more = f" and {len(values) - 5} more values" if len(values) > 5 else ""
    raise DataError(
        f"{shown}: {int(bad.sum()):,} of {len(labels):,} labels are outside 0..{num_classes - 1}: {listed}{more}"
    )


def check_counts(images: np.ndarray, labels: np.ndarray, images_shown: str, labels_shown: str) -> None:
    """Raise DataError if the images file and the labels file hold different numbers of examples."""
    if len(images) != len(labels):
        raise DataError(
            f"{images_shown} holds {len(images):,} images but {labels_shown} holds {len(labels):,} labels"
        )
