"""IDX and .npy reading, writing and validation: every bad file gives one clear DataError."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from harness.data import formats
from harness.errors import DataError


def _images(n: int = 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def _labels(n: int = 20) -> np.ndarray:
    return (np.arange(n) % 10).astype(np.uint8)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip_plain_and_gzip(tmp_path: Path, suffix: str) -> None:
    images, labels = _images(), _labels()
    formats.write_idx_images(tmp_path / f"img{suffix}", images)
    formats.write_idx_labels(tmp_path / f"lab{suffix}", labels)
    np.testing.assert_array_equal(formats.read_idx(tmp_path / f"img{suffix}"), images)
    np.testing.assert_array_equal(formats.read_idx(tmp_path / f"lab{suffix}"), labels)
    got_images, got_labels = formats.read_idx_pair(tmp_path / f"img{suffix}", tmp_path / f"lab{suffix}")
    np.testing.assert_array_equal(got_images, images)
    assert got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_labels, labels)


def test_idx_header_is_the_mnist_one(tmp_path: Path) -> None:
    formats.write_idx_images(tmp_path / "img", _images(3))
    formats.write_idx_labels(tmp_path / "lab", _labels(3))
    assert (tmp_path / "img").read_bytes()[:16] == bytes.fromhex("00000803" "00000003" "0000001c" "0000001c")
    assert (tmp_path / "lab").read_bytes()[:8] == bytes.fromhex("00000801" "00000003")
    assert (tmp_path / "img").stat().st_size == 16 + 3 * 784


def test_gzip_output_is_reproducible(tmp_path: Path) -> None:
    formats.write_idx_images(tmp_path / "a.gz", _images())
    formats.write_idx_images(tmp_path / "b.gz", _images())
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_messages_name_the_file_relative_to_the_folder_given(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(DataError, match=r"^MNIST/raw/train-images-idx3-ubyte: file is missing$"):
        formats.read_idx_images(raw / "train-images-idx3-ubyte", root=tmp_path)


def _expect(message_parts: list[str], call) -> None:
    with pytest.raises(DataError) as caught:
        call()
    for part in message_parts:
        assert part in str(caught.value), f"{part!r} not in {str(caught.value)!r}"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"")
    _expect(["train-images-idx3-ubyte: file is empty"], lambda: formats.read_idx_images(path))


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    formats.write_idx_images(path, _images(10))
    path.write_bytes(path.read_bytes()[:-100])
    _expect(
        ["train-images-idx3-ubyte: truncated", "10 x 28 x 28", "7,840 bytes of data", "7,740 bytes"],
        lambda: formats.read_idx_images(path),
    )


def test_header_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(bytes.fromhex("00000801"))
    _expect(["t10k-labels-idx1-ubyte: truncated", "header"], lambda: formats.read_idx_labels(path))


def test_extra_bytes_after_the_data(tmp_path: Path) -> None:
    path = tmp_path / "t10k-labels-idx1-ubyte"
    formats.write_idx_labels(path, _labels(10))
    path.write_bytes(path.read_bytes() + b"\x00" * 7)
    _expect(["t10k-labels-idx1-ubyte: 7 bytes more than the header"], lambda: formats.read_idx_labels(path))


def test_labels_file_read_as_images_says_what_it_looks_like(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    formats.write_idx_labels(path, _labels())
    _expect(
        ["train-images-idx3-ubyte: magic number 2049", "expected 2051", "an images file", "looks like a labels file"],
        lambda: formats.read_idx_images(path),
    )


def test_images_file_read_as_labels(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte"
    formats.write_idx_images(path, _images())
    _expect(
        ["train-labels-idx1-ubyte: magic number 2051", "expected 2049", "looks like an images file"],
        lambda: formats.read_idx_labels(path),
    )


def test_gzip_bytes_without_gz_name(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(formats.idx_bytes(_images(), formats.IMAGES_MAGIC)))
    _expect(["train-images-idx3-ubyte: magic number", "looks like a gzip file"], lambda: formats.read_idx_images(path))


def test_bad_gzip(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"this is not gzip at all")
    _expect(["train-images-idx3-ubyte.gz: not a valid gzip file"], lambda: formats.read_idx_images(path))


def test_not_an_idx_file(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"PK\x03\x04 a zip file, say")
    _expect(["data.bin: not an IDX file"], lambda: formats.read_idx(path))


def test_wrong_image_size(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    images = np.zeros((4, 32, 32), dtype=np.uint8)
    path.write_bytes(formats.idx_bytes(images, formats.IMAGES_MAGIC))
    _expect(["train-images-idx3-ubyte: images are 32x32 pixels, expected 28x28"], lambda: formats.read_idx_images(path))


def test_count_mismatch(tmp_path: Path) -> None:
    formats.write_idx_images(tmp_path / "train-images-idx3-ubyte", _images(10))
    formats.write_idx_labels(tmp_path / "train-labels-idx1-ubyte", _labels(9))
    _expect(
        ["train-images-idx3-ubyte holds 10 images but train-labels-idx1-ubyte holds 9 labels"],
        lambda: formats.read_idx_pair(
            tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte", root=tmp_path
        ),
    )


def test_label_out_of_range_says_which_value_and_how_many(tmp_path: Path) -> None:
    labels = _labels(20)
    labels[[1, 5, 9]] = 12
    labels[2] = 10
    path = tmp_path / "train-labels-idx1-ubyte"
    formats.write_idx_labels(path, labels)
    _expect(
        ["train-labels-idx1-ubyte: 4 of 20 labels are outside 0..9", "10 (1 time)", "12 (3 times)"],
        lambda: formats.read_idx_labels(path),
    )


def test_read_idx_returns_a_writable_native_array(tmp_path: Path) -> None:
    formats.write_idx_images(tmp_path / "img", _images())
    array = formats.read_idx(tmp_path / "img")
    assert array.flags.writeable and array.dtype == np.uint8


# --------------------------------------------------------------------------- .npy


def _signs(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(1).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    return x, np.arange(n, dtype=np.int64) % 6


def test_npy_round_trip(tmp_path: Path) -> None:
    x, y = _signs()
    formats.write_npy(tmp_path / "X_train.npy", x)
    formats.write_npy(tmp_path / "Y_train.npy", y)
    got_x, got_y = formats.read_npy_pair(tmp_path / "X_train.npy", tmp_path / "Y_train.npy")
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    np.testing.assert_array_equal(np.load(tmp_path / "X_train.npy"), x)


def test_npy_not_a_numpy_file(tmp_path: Path) -> None:
    (tmp_path / "X_train.npy").write_bytes(b"\x89PNG\r\n\x1a\n not numpy")
    _expect(["X_train.npy: not a numpy .npy file"], lambda: formats.read_npy_images(tmp_path / "X_train.npy"))


def test_npy_pickled_objects_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "Y_train.npy", np.array([1, "two", None], dtype=object), allow_pickle=True)
    _expect(["Y_train.npy: holds pickled Python objects"], lambda: formats.read_npy_labels(tmp_path / "Y_train.npy"))


def test_npy_truncated(tmp_path: Path) -> None:
    formats.write_npy(tmp_path / "X_train.npy", _signs()[0])
    data = (tmp_path / "X_train.npy").read_bytes()
    (tmp_path / "X_train.npy").write_bytes(data[: len(data) // 2])
    _expect(["X_train.npy: truncated or corrupt .npy file"], lambda: formats.read_npy_images(tmp_path / "X_train.npy"))


def test_npy_wrong_image_shape(tmp_path: Path) -> None:
    formats.write_npy(tmp_path / "X_train.npy", np.zeros((5, 64, 64), dtype=np.uint8))
    _expect(
        ["X_train.npy: images have shape (5, 64, 64), expected (N, 64, 64, 3)"],
        lambda: formats.read_npy_images(tmp_path / "X_train.npy"),
    )


def test_npy_wrong_image_dtype(tmp_path: Path) -> None:
    formats.write_npy(tmp_path / "X_train.npy", np.zeros((5, 64, 64, 3), dtype=np.float32))
    _expect(
        ["X_train.npy: images have dtype float32, expected uint8"],
        lambda: formats.read_npy_images(tmp_path / "X_train.npy"),
    )


def test_npy_labels_wrong_shape_and_dtype(tmp_path: Path) -> None:
    formats.write_npy(tmp_path / "Y_train.npy", np.zeros((5, 1), dtype=np.int64))
    _expect(
        ["Y_train.npy: labels have shape (5, 1), expected (N,)"],
        lambda: formats.read_npy_labels(tmp_path / "Y_train.npy"),
    )
    formats.write_npy(tmp_path / "Y_val.npy", np.zeros(5, dtype=np.float64))
    _expect(
        ["Y_val.npy: labels have dtype float64, expected integers"],
        lambda: formats.read_npy_labels(tmp_path / "Y_val.npy"),
    )


def test_npy_labels_outside_0_to_5(tmp_path: Path) -> None:
    formats.write_npy(tmp_path / "Y_test.npy", np.array([0, 1, 6, 6, -1, 5]))
    _expect(
        ["Y_test.npy: 3 of 6 labels are outside 0..5", "-1 (1 time)", "6 (2 times)"],
        lambda: formats.read_npy_labels(tmp_path / "Y_test.npy"),
    )


def test_npy_count_mismatch(tmp_path: Path) -> None:
    x, y = _signs(6)
    formats.write_npy(tmp_path / "X_val.npy", x)
    formats.write_npy(tmp_path / "Y_val.npy", y[:4])
    _expect(
        ["X_val.npy holds 6 images but Y_val.npy holds 4 labels"],
        lambda: formats.read_npy_pair(tmp_path / "X_val.npy", tmp_path / "Y_val.npy", root=tmp_path),
    )


def test_npy_reader_never_unpickles(tmp_path: Path) -> None:
    (tmp_path / "Y_train.npy").write_bytes(pickle.dumps([1, 2, 3]))
    _expect(["Y_train.npy: not a numpy .npy file"], lambda: formats.read_npy_labels(tmp_path / "Y_train.npy"))


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "file.bin"
    formats.atomic_write_bytes(path, b"first")
    formats.atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.bin"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    formats.atomic_write_bytes(path, b"complete")
    with pytest.raises(TypeError):
        formats.atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]  # fails while writing
    assert path.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
