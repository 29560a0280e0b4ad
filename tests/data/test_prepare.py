"""prepare(): layouts the assignments' code reads, sources, hidden splits, manifest and clear errors."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torchvision

from harness import __version__
from harness.data import formats, load_split, prepare, read_manifest
from harness.data import preparation as prep
from harness.data.preparation import DATASETS, SPLITS
from harness.errors import DataError, DownloadUnavailable

REAL_CHECK_REACHABLE = prep.check_reachable
HIDDEN_SEED = 987_654_321_987


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _public_tree(data: Path) -> dict[str, str]:
    public = data / "public"
    return {path.relative_to(public).as_posix(): _sha256(path) for path in sorted(public.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[str]]:
    data = tmp_path_factory.mktemp("data")
    lines: list[str] = []
    manifest = prepare(data, source="synthetic", seed=3, hidden_seed=HIDDEN_SEED, small=True, on_progress=lines.append)
    return data, manifest, lines


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may reach the network: the reachability check always says there is none."""

    def offline(urls, timeout=3.0):
        raise DownloadUnavailable("cannot reach the download site: network is off in tests")

    monkeypatch.setattr(prep, "check_reachable", offline)


# --------------------------------------------------------------------------- synthetic layout


@pytest.mark.parametrize("cls", [torchvision.datasets.MNIST, torchvision.datasets.FashionMNIST])
def test_torchvision_finds_the_files_and_never_downloads(
    prepared: tuple[Path, dict, list[str]], cls, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("torchvision tried to download")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", refuse)
    data, _, _ = prepared
    train = cls(str(data / "public"), train=True, download=True)
    test = cls(str(data / "public"), train=False, download=True)
    assert len(train) == 6000 and len(test) == 1000
    image, label = train[0]
    assert image.size == (28, 28) and 0 <= label <= 9


def test_signs_loads_like_the_sheet_does(
    prepared: tuple[Path, dict, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _, _ = prepared
    monkeypatch.chdir(data / "public")
    names = ("X_train", "Y_train", "X_val", "Y_val", "X_test", "Y_test")
    shapes = {name: np.load(f"sign_data/{name}.npy").shape for name in names}
    assert shapes == {
        "X_train": (960, 64, 64, 3),
        "Y_train": (960,),
        "X_val": (120, 64, 64, 3),
        "Y_val": (120,),
        "X_test": (120, 64, 64, 3),
        "Y_test": (120,),
    }
    y_train = np.load("sign_data/Y_train.npy")
    assert y_train.dtype == np.int64 and np.bincount(y_train).tolist() == [160] * 6
    assert np.load("sign_data/X_train.npy").dtype == np.uint8


def test_manifest_describes_every_dataset(prepared: tuple[Path, dict, list[str]]) -> None:
    data, manifest, _ = prepared
    assert read_manifest(data) == manifest == json.loads((data / "manifest.json").read_text())
    assert manifest["gradebench"] == __version__
    assert set(manifest["datasets"]) == set(DATASETS)
    mnist = manifest["datasets"]["mnist"]
    assert mnist["source"] == "synthetic" and mnist["seed"] == 3 and mnist["small"] is True
    assert mnist["counts"] == {"train": 6000, "test": 1000, "hidden": 1000}
    assert manifest["datasets"]["signs"]["counts"] == {"train": 960, "val": 120, "test": 120, "hidden": 120}
    for entry in manifest["datasets"].values():
        assert entry["gradebench"] == __version__ and entry["created"]
        for relative, digest in {**entry["files"], **entry["hidden_files"]}.items():
            assert _sha256(data / relative) == digest
    assert sum(len(entry["files"]) for entry in manifest["datasets"].values()) == len(_public_tree(data)) == 14
    assert str(HIDDEN_SEED) not in json.dumps(manifest)  # the secret stays in hidden/seed


def test_progress_reports_each_decision(prepared: tuple[Path, dict, list[str]]) -> None:
    _, _, lines = prepared
    for dataset in DATASETS:
        assert any(line.startswith(f"{dataset}: synthesizing") and "(seed 3)" in line for line in lines)
        assert any(line.startswith(f"{dataset}: hidden split") for line in lines)


def test_load_split_reads_every_split(prepared: tuple[Path, dict, list[str]]) -> None:
    data, manifest, _ = prepared
    for dataset in DATASETS:
        for split in (*SPLITS[dataset], "hidden"):
            images, labels = load_split(data, dataset, split)
            assert images.dtype == np.uint8 and labels.dtype == np.int64
            assert len(images) == len(labels) == manifest["datasets"][dataset]["counts"][split]
            assert images.shape[1:] == ((64, 64, 3) if dataset == "signs" else (28, 28))


def test_same_seed_same_public_tree_whatever_the_hidden_seed(
    prepared: tuple[Path, dict, list[str]], tmp_path: Path
) -> None:
    data, manifest, _ = prepared
    again = prepare(tmp_path, source="synthetic", seed=3, hidden_seed=999, small=True)
    assert _public_tree(tmp_path) == _public_tree(data)
    assert again["datasets"]["mnist"]["hidden_files"] != manifest["datasets"]["mnist"]["hidden_files"]
    other = prepare(tmp_path / "other", datasets=("mnist",), source="synthetic", seed=4, hidden_seed=999, small=True)
    assert other["datasets"]["mnist"]["files"] != manifest["datasets"]["mnist"]["files"]


def test_hidden_split_lives_outside_public_and_is_not_the_test_split(prepared: tuple[Path, dict, list[str]]) -> None:
    data, _, _ = prepared
    assert (data / "hidden" / "seed").read_text().strip() == str(HIDDEN_SEED)
    assert not any("hidden" in path for path in _public_tree(data))
    for dataset in DATASETS:
        assert (data / "hidden" / dataset / "images.npy").is_file()
        hidden, _ = load_split(data, dataset, "hidden")
        public = {image.tobytes() for split in SPLITS[dataset] for image in load_split(data, dataset, split)[0]}
        assert not public & {image.tobytes() for image in hidden}


def test_stored_hidden_seed_is_reused(tmp_path: Path) -> None:
    first = prepare(tmp_path, datasets=("signs",), source="synthetic")
    seed = (tmp_path / "hidden" / "seed").read_text().strip()
    assert seed.isdigit() and (tmp_path / "hidden" / "seed").stat().st_mode & 0o777 == 0o600
    second = prepare(tmp_path, datasets=("signs",), source="synthetic")
    assert second["datasets"]["signs"]["hidden_files"] == first["datasets"]["signs"]["hidden_files"]


def test_preparing_one_dataset_keeps_the_others_in_the_manifest(tmp_path: Path) -> None:
    prepare(tmp_path, datasets=("signs",), source="synthetic", hidden_seed=1)
    manifest = prepare(tmp_path, datasets=("mnist",), source="synthetic", hidden_seed=1, small=True)
    assert set(manifest["datasets"]) == {"signs", "mnist"}
    assert not list(tmp_path.rglob("*.partial"))


# --------------------------------------------------------------------------- real files (--from)


def _write_mnist_like(folder: Path, n_train: int = 300, n_test: int = 100, suffix: str = "") -> dict:
    """Small real-format MNIST files, as a TA's folder would hold them."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        images_name, labels_name = prep.IDX_FILES[split]
        formats.write_idx_images(folder / f"{images_name}{suffix}", images)
        formats.write_idx_labels(folder / f"{labels_name}{suffix}", labels)
        arrays[split] = (images, labels)
    return arrays


def _write_signs_like(folder: Path) -> None:
    rng = np.random.default_rng(1)
    for split, n in (("train", 60), ("val", 12), ("test", 12)):
        formats.write_npy(folder / f"X_{split}.npy", rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8))
        formats.write_npy(folder / f"Y_{split}.npy", np.arange(n, dtype=np.int64) % 6)


def test_files_from_a_torchvision_layout_are_copied_exactly(tmp_path: Path) -> None:
    source = tmp_path / "real"
    arrays = _write_mnist_like(source / "MNIST" / "raw")
    lines: list[str] = []
    manifest = prepare(
        tmp_path / "data", datasets=("mnist",), source="files", from_dir=source, hidden_seed=5, on_progress=lines.append
    )
    entry = manifest["datasets"]["mnist"]
    assert entry["source"] == "files" and entry["counts"] == {"train": 300, "test": 100, "hidden": 100}
    assert entry["seed"] is None
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert (tmp_path / "data/public/MNIST/raw" / name).read_bytes() == (source / "MNIST/raw" / name).read_bytes()
    assert any("reading files from" in line for line in lines)

    hidden, hidden_labels = load_split(tmp_path / "data", "mnist", "hidden")
    test_images, test_labels = arrays["test"]
    assert sorted(hidden_labels.tolist()) == sorted(test_labels.tolist())
    assert not {image.tobytes() for image in test_images} & {image.tobytes() for image in hidden}
    assert not np.array_equal(hidden_labels, test_labels)  # shuffled: indices do not line up with the test split


def test_gzipped_files_directly_in_the_dataset_folder(tmp_path: Path) -> None:
    source = tmp_path / "real"
    _write_mnist_like(source / "FashionMNIST", suffix=".gz")
    manifest = prepare(tmp_path / "data", datasets=("fashionmnist",), source="auto", from_dir=source, hidden_seed=5)
    assert manifest["datasets"]["fashionmnist"]["source"] == "files"
    dataset = torchvision.datasets.FashionMNIST(str(tmp_path / "data" / "public"), train=True, download=True)
    assert len(dataset) == 300


@pytest.mark.parametrize("layout", ["sign_data", "."])
def test_signs_from_npy_files(tmp_path: Path, layout: str) -> None:
    source = tmp_path / "real"
    _write_signs_like(source / layout)
    manifest = prepare(tmp_path / "data", datasets=("signs",), source="files", from_dir=source, hidden_seed=5)
    assert manifest["datasets"]["signs"]["counts"] == {"train": 60, "val": 12, "test": 12, "hidden": 12}
    hidden, _ = load_split(tmp_path / "data", "signs", "hidden")
    assert hidden.shape == (12, 64, 64, 3)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-50])


def _relabel(path: Path) -> None:
    labels = formats.read_idx(path)
    labels[3] = 12
    formats.write_idx_labels(path, labels)


BAD_MNIST = {
    "truncated": ("train-images-idx3-ubyte", _truncate, ["MNIST/raw/train-images-idx3-ubyte: truncated"]),
    "wrong magic": (
        "t10k-images-idx3-ubyte",
        lambda path: path.write_bytes(formats.idx_bytes(np.zeros(5, np.uint8), formats.LABELS_MAGIC)),
        ["MNIST/raw/t10k-images-idx3-ubyte: magic number 2049, expected 2051", "looks like a labels file"],
    ),
    "label 12": (
        "train-labels-idx1-ubyte",
        _relabel,
        ["MNIST/raw/train-labels-idx1-ubyte: 1 of 300 labels are outside 0..9: 12"],
    ),
    "missing": ("t10k-labels-idx1-ubyte", Path.unlink, ["MNIST/raw/t10k-labels-idx1-ubyte: file is missing"]),
    "count": (
        "t10k-labels-idx1-ubyte",
        lambda path: formats.write_idx_labels(path, np.zeros(99, np.uint8)),
        ["MNIST/raw/t10k-images-idx3-ubyte holds 100 images but MNIST/raw/t10k-labels-idx1-ubyte holds 99 labels"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MNIST))
@pytest.mark.parametrize("source", ["files", "auto"])
def test_bad_mnist_files_are_a_clear_error_never_replaced(tmp_path: Path, case: str, source: str) -> None:
    name, damage, expected = BAD_MNIST[case]
    raw = tmp_path / "real" / "MNIST" / "raw"
    _write_mnist_like(raw)
    damage(raw / name)
    with pytest.raises(DataError) as caught:
        prepare(tmp_path / "data", datasets=("mnist",), source=source, from_dir=tmp_path / "real", hidden_seed=1)
    for part in expected:
        assert part in str(caught.value)
    assert not (tmp_path / "data" / "public" / "MNIST").exists()


BAD_SIGNS = {
    "wrong shape": (
        "X_train.npy",
        lambda path: formats.write_npy(path, np.zeros((60, 64, 64), np.uint8)),
        ["sign_data/X_train.npy: images have shape (60, 64, 64), expected (N, 64, 64, 3)"],
    ),
    "label 7": (
        "Y_val.npy",
        lambda path: formats.write_npy(path, np.full(12, 7, np.int64)),
        ["sign_data/Y_val.npy: 12 of 12 labels are outside 0..5: 7 (12 times)"],
    ),
    "not numpy": ("X_test.npy", lambda path: path.write_text("hello"), ["sign_data/X_test.npy: not a numpy .npy file"]),
    "missing": ("Y_test.npy", Path.unlink, ["sign_data/Y_test.npy: file is missing"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SIGNS))
def test_bad_signs_files_are_a_clear_error(tmp_path: Path, case: str) -> None:
    name, damage, expected = BAD_SIGNS[case]
    _write_signs_like(tmp_path / "real" / "sign_data")
    damage(tmp_path / "real" / "sign_data" / name)
    with pytest.raises(DataError) as caught:
        prepare(tmp_path / "data", datasets=("signs",), source="auto", from_dir=tmp_path / "real", hidden_seed=1)
    for part in expected:
        assert part in str(caught.value)


def test_files_source_without_the_dataset_says_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    with pytest.raises(DataError, match=r"no mnist files here; expected MNIST/raw/train-images-idx3-ubyte"):
        prepare(tmp_path / "data", datasets=("mnist",), source="files", from_dir=tmp_path / "real")
    with pytest.raises(DataError, match="needs a folder to read from"):
        prepare(tmp_path / "data", datasets=("mnist",), source="files")
    with pytest.raises(DataError, match="does not exist"):
        prepare(tmp_path / "data", datasets=("mnist",), from_dir=tmp_path / "nowhere")


# --------------------------------------------------------------------------- download and fallback


def test_auto_without_network_falls_back_to_synthetic_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    lines: list[str] = []
    manifest = prepare(
        tmp_path / "data",
        datasets=("mnist", "signs"),
        from_dir=tmp_path / "real",
        small=True,
        hidden_seed=1,
        on_progress=lines.append,
    )
    assert {entry["source"] for entry in manifest["datasets"].values()} == {"synthetic"}
    assert any(line.startswith("mnist: not in") for line in lines)
    fallback = [line for line in lines if line.endswith("using the synthetic stand-in")]
    assert any(line.startswith("mnist: no network (cannot reach") for line in fallback)
    assert any(line.startswith("signs: no public download") for line in fallback)


def test_download_source_without_network_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadUnavailable, match="mnist: no network"):
        prepare(tmp_path, datasets=("mnist",), source="download")
    with pytest.raises(DownloadUnavailable, match="signs: no public download.*--from"):
        prepare(tmp_path, datasets=("signs",), source="download")


def test_download_goes_through_torchvision_and_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeMNIST:
        """Stands in for torchvision.datasets.MNIST: its 'download' writes real-format files."""

        mirrors = ["https://example.invalid/mnist/"]

        def __init__(self, root: str, train: bool, download: bool) -> None:
            _write_mnist_like(Path(root) / "MNIST" / "raw", n_train=50, n_test=20, suffix="")

    monkeypatch.setattr(prep, "check_reachable", lambda urls, timeout=3.0: None)
    monkeypatch.setattr(prep, "_torchvision_class", lambda dataset: FakeMNIST)
    manifest = prepare(tmp_path, datasets=("mnist",), source="auto", hidden_seed=1)
    entry = manifest["datasets"]["mnist"]
    assert entry["source"] == "download" and entry["counts"] == {"train": 50, "test": 20, "hidden": 20}
    assert entry["origin"] == "https://example.invalid/mnist/"


def test_failed_download_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenMNIST:
        mirrors = ["https://example.invalid/mnist/"]

        def __init__(self, root: str, train: bool, download: bool) -> None:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(prep, "check_reachable", lambda urls, timeout=3.0: None)
    monkeypatch.setattr(prep, "_torchvision_class", lambda dataset: BrokenMNIST)
    lines: list[str] = []
    manifest = prepare(tmp_path, datasets=("mnist",), small=True, hidden_seed=1, on_progress=lines.append)
    assert manifest["datasets"]["mnist"]["source"] == "synthetic"
    assert any("download failed (RuntimeError: Error downloading" in line for line in lines)


def test_reachability_check_is_fast_and_says_why() -> None:
    with socket.socket() as probe:  # a local port nobody listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(DownloadUnavailable, match=f"cannot reach 127.0.0.1:{closed}"):
        REAL_CHECK_REACHABLE([f"http://127.0.0.1:{closed}/"], timeout=1.0)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        open_port = server.getsockname()[1]
        REAL_CHECK_REACHABLE([f"http://127.0.0.1:{closed}/", f"http://127.0.0.1:{open_port}/"], timeout=1.0)


# --------------------------------------------------------------------------- loading errors


def test_load_split_before_prepare_says_what_to_do(tmp_path: Path) -> None:
    expected = r"no prepared data here \(manifest.json is missing\); run `gradebench data prepare`"
    with pytest.raises(DataError, match=expected):
        load_split(tmp_path, "mnist", "train")


def test_load_split_of_a_dataset_not_prepared(tmp_path: Path) -> None:
    prepare(tmp_path, datasets=("signs",), source="synthetic", hidden_seed=1)
    with pytest.raises(DataError, match=r"mnist is not prepared \(prepared: signs\)"):
        load_split(tmp_path, "mnist", "train")
    with pytest.raises(DataError, match="signs has no split 'validation'"):
        load_split(tmp_path, "signs", "validation")
    with pytest.raises(DataError, match="unknown dataset 'cifar10'"):
        load_split(tmp_path, "cifar10", "train")


def test_load_split_names_a_damaged_prepared_file(tmp_path: Path) -> None:
    prepare(tmp_path, datasets=("signs",), source="synthetic", hidden_seed=1)
    (tmp_path / "public" / "sign_data" / "X_val.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"^public/sign_data/X_val.npy: file is empty"):
        load_split(tmp_path, "signs", "val")
