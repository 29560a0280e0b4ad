"""Tests of harness.loading: every submission shape, LMS bulk downloads, validation failures, hostile zips."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from harness import loading
from harness.loading import archives, common, validation
from harness.errors import LoadError
from harness.loading import LoadLimits, content_hash, load_batch, load_submission
from harness.models import MiB, LoadFailure, Submission


def notebook_text(source: str = "x = 1") -> str:
    """A valid nbformat-4 notebook with one code cell (a fixed cell id, so equal sources give equal bytes)."""
    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source, id="cell-0")]))


def make_zip(path: Path, entries: dict[str, str | bytes]) -> Path:
    """Write a zip holding ``entries`` (name -> content)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return path


def zip_bytes(entries: dict[str, str | bytes]) -> bytes:
    """The bytes of a zip holding ``entries``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def files_under(folder: Path) -> set[str]:
    """Relative paths of every file (and link) under ``folder``."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def bytes_under(folder: Path) -> int:
    """Total size of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def ok(result: Submission | LoadFailure) -> Submission:
    """The result, asserted to be a Submission (the failure reason shows otherwise)."""
    assert isinstance(result, Submission), result
    return result


def failed(result: Submission | LoadFailure) -> LoadFailure:
    """The result, asserted to be a LoadFailure."""
    assert isinstance(result, LoadFailure), result
    return result


def by_student(results: list[Submission | LoadFailure]) -> dict[str, Submission | LoadFailure]:
    """Results keyed by student (asserting there are no duplicates)."""
    keyed = {r.student: r for r in results}
    assert len(keyed) == len(results)
    return keyed


# ---------------------------------------------------------------------------------------- shapes


def test_single_notebook_is_staged_and_described(tmp_path: Path) -> None:
    source = tmp_path / "CNNMNIST.ipynb"
    source.write_text(notebook_text())
    sub = ok(load_submission(source, tmp_path / "staging"))
    assert (sub.student, sub.kind, sub.files) == ("CNNMNIST", "notebook", ("CNNMNIST.ipynb",))
    assert sub.root == tmp_path / "staging" / "CNNMNIST"
    assert (sub.root / "CNNMNIST.ipynb").read_bytes() == source.read_bytes()
    assert sub.source == source
    assert sub.content_hash == content_hash(sub.root, sub.files)
    assert sub.warnings == ()


def test_single_module_with_explicit_student(tmp_path: Path) -> None:
    source = tmp_path / "q1.py"
    source.write_text("import torch\n")
    sub = ok(load_submission(source, tmp_path / "staging", student="smithjohn_12345"))
    assert (sub.student, sub.kind, sub.files) == ("smithjohn_12345", "module", ("q1.py",))
    assert sub.root == tmp_path / "staging" / "smithjohn_12345"


def test_package_folder_keeps_its_import_name(tmp_path: Path) -> None:
    package = tmp_path / "mnistlib"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text("class Net: pass\n")
    sub = ok(load_submission(package, tmp_path / "staging"))
    assert (sub.student, sub.kind) == ("mnistlib", "package")
    assert sub.files == ("mnistlib/__init__.py", "mnistlib/model.py")


def test_plain_folder_with_several_notebooks_is_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "alice"
    (folder / "utils").mkdir(parents=True)
    (folder / "CNNMNIST.ipynb").write_text(notebook_text())
    (folder / "autoencoders.ipynb").write_text(notebook_text("y = 2"))
    (folder / "utils" / "plots.py").write_text("def plot(): pass\n")
    (folder / ".DS_Store").write_bytes(b"\0\1junk")
    sub = ok(load_submission(folder, tmp_path / "staging"))
    assert (sub.student, sub.kind) == ("alice", "folder")
    assert sub.files == ("CNNMNIST.ipynb", "autoencoders.ipynb", "utils/plots.py")


def test_zip_with_one_top_folder_is_unwrapped(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "alice.zip", {
        "handin/CNNMNIST.ipynb": notebook_text(),
        "handin/answers.pdf": b"%PDF-1.4",
        "__MACOSX/handin/._CNNMNIST.ipynb": b"\0\5\26\7 AppleDouble",
    })
    sub = ok(load_submission(source, tmp_path / "staging"))
    assert (sub.student, sub.kind) == ("alice", "notebook")
    assert sub.files == ("CNNMNIST.ipynb", "answers.pdf")


def test_zip_of_a_package_keeps_the_package_folder(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "ex2_1_2.zip", {"mnistlib/__init__.py": "", "mnistlib/train.py": "x = 1\n"})
    sub = ok(load_submission(source, tmp_path / "staging"))
    assert sub.kind == "package"
    assert sub.files == ("mnistlib/__init__.py", "mnistlib/train.py")


def test_staging_again_replaces_the_previous_copy(tmp_path: Path) -> None:
    source = tmp_path / "bob.py"
    source.write_text("a = 1\n")
    first = ok(load_submission(source, tmp_path / "staging"))
    (first.root / "leftover.txt").write_text("from an earlier run")
    second = ok(load_submission(source, tmp_path / "staging"))
    assert second.files == ("bob.py",)
    assert files_under(second.root) == {"bob.py"}
    assert second.content_hash == first.content_hash


def test_missing_path_raises_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="nowhere.ipynb: no such file"):
        load_submission(tmp_path / "nowhere.ipynb", tmp_path / "staging")
    with pytest.raises(LoadError, match="nowhere: no such file"):
        load_batch(tmp_path / "nowhere", tmp_path / "staging")


def test_unsupported_file_type_is_a_failure(tmp_path: Path) -> None:
    source = tmp_path / "answers.pdf"
    source.write_bytes(b"%PDF-1.4")
    failure = failed(load_submission(source, tmp_path / "staging"))
    assert failure.reason.startswith("answers.pdf is not a submission: expected a notebook (.ipynb)")


# ------------------------------------------------------------------------------------------ batches


def lms_uploads() -> dict[str, bytes]:
    """A Canvas bulk download of three students: a resubmission, a LATE hand-in, a zip holding a package."""
    inner = zip_bytes({
        "ex2_1_2/mnistlib/__init__.py": "",
        "ex2_1_2/mnistlib/model.py": "class Net: pass\n",
        "ex2_1_2/ex2.pdf": b"%PDF-1.4",
        "ex2_1_2/README": "Kim Lee, Ola Nordmann\n",
    })
    return {
        "smithjohn_12345_6789012_CNNMNIST.ipynb": notebook_text("first = 1").encode(),
        "smithjohn_12345_6789099_CNNMNIST-1.ipynb": notebook_text("second = 2").encode(),
        "smithjohn_12345_6789012_autoencoders.ipynb": notebook_text("ae = 1").encode(),
        "doejane_LATE_222_333_CNNMNIST.ipynb": notebook_text().encode(),
        "leekim_444_555_ex2_1_2.zip": inner,
    }


def check_lms_batch(results: list[Submission | LoadFailure]) -> dict[str, Submission]:
    """Assert what every reading of ``lms_uploads`` must give; returns the submissions by student."""
    assert [r.student for r in results] == ["doejane_222", "leekim_444", "smithjohn_12345"]
    subs = {r.student: ok(r) for r in results}
    smith = subs["smithjohn_12345"]
    assert smith.files == ("CNNMNIST.ipynb", "autoencoders.ipynb")
    assert smith.kind == "folder"
    assert "second = 2" in (smith.root / "CNNMNIST.ipynb").read_text()
    assert smith.warnings == (
        "smithjohn_12345_6789012_CNNMNIST.ipynb and smithjohn_12345_6789099_CNNMNIST-1.ipynb both restore to "
        "CNNMNIST.ipynb: kept smithjohn_12345_6789099_CNNMNIST-1.ipynb (the later resubmission)",
    )
    jane = subs["doejane_222"]
    assert (jane.files, jane.kind) == (("CNNMNIST.ipynb",), "notebook")
    assert jane.warnings == ("handed in late (the LMS marked the upload LATE)",)
    assert jane.late and not smith.late
    kim = subs["leekim_444"]
    assert kim.files == ("README", "ex2.pdf", "mnistlib/__init__.py", "mnistlib/model.py")
    assert kim.kind == "package"
    return subs


def test_lms_bulk_zip_groups_students_and_restores_names(tmp_path: Path) -> None:
    bulk = make_zip(tmp_path / "submissions.zip", lms_uploads())
    results = load_batch(bulk, tmp_path / "staging")
    subs = check_lms_batch(results)
    assert all(s.source == bulk for s in subs.values())
    assert all(s.root.parent == tmp_path / "staging" for s in subs.values())


def test_lms_extracted_folder_reads_like_the_zip(tmp_path: Path) -> None:
    folder = tmp_path / "extracted"
    folder.mkdir()
    for name, content in lms_uploads().items():
        (folder / name).write_bytes(content)
    from_folder = check_lms_batch(load_batch(folder, tmp_path / "a"))
    from_zip = check_lms_batch(load_batch(make_zip(tmp_path / "bulk.zip", lms_uploads()), tmp_path / "b"))
    assert {s: r.content_hash for s, r in from_folder.items()} == {s: r.content_hash for s, r in from_zip.items()}
    assert from_folder["doejane_222"].source == folder / "doejane_LATE_222_333_CNNMNIST.ipynb"


def test_bulk_zip_wrapped_in_a_folder_is_unwrapped(tmp_path: Path) -> None:
    wrapped = {f"Assignment 2 Download/{name}": content for name, content in lms_uploads().items()}
    check_lms_batch(load_batch(make_zip(tmp_path / "bulk.zip", wrapped), tmp_path / "staging"))


def test_plain_folder_batch_names_students_after_entries(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    (batch / "bob").mkdir(parents=True)
    (batch / "alice.ipynb").write_text(notebook_text())
    (batch / "bob" / "CNNMNIST.ipynb").write_text(notebook_text())
    make_zip(batch / "carol.zip", {"carol/q1.py": "a = 1\n", "carol/q2.py": "b = 2\n"})
    (batch / "dave.py").write_text("d = 1\n")
    (batch / "dave.ipynb").write_text(notebook_text())
    (batch / ".DS_Store").write_bytes(b"junk")
    results = by_student(load_batch(batch, tmp_path / "staging"))
    assert list(results) == sorted(results) == ["alice", "bob", "carol", "dave.ipynb", "dave.py"]
    assert ok(results["alice"]).files == ("alice.ipynb",)
    assert ok(results["bob"]).files == ("CNNMNIST.ipynb",)
    assert (ok(results["carol"]).files, ok(results["carol"]).kind) == (("q1.py", "q2.py"), "folder")
    assert ok(results["dave.py"]).kind == "module"


def test_folders_in_a_batch_zip_are_students_and_a_package_keeps_its_name(tmp_path: Path) -> None:
    bulk = make_zip(tmp_path / "bulk.zip", {
        "alice/q1.py": "a = 1\n", "alice/q2.py": "b = 2\n",
        "mnistlib/__init__.py": "", "mnistlib/model.py": "x = 1\n",
    })
    results = by_student(load_batch(bulk, tmp_path / "staging"))
    assert (ok(results["alice"]).files, ok(results["alice"]).kind) == (("q1.py", "q2.py"), "folder")
    package = ok(results["mnistlib"])
    assert (package.files, package.kind) == (("mnistlib/__init__.py", "mnistlib/model.py"), "package")


# ----------------------------------------------------------------------------------------- failures


def write_non_utf8_name(folder: Path, raw_name: bytes, content: bytes) -> None:
    """Create a file whose name is not UTF-8 (``raw_name`` bytes)."""
    fd = os.open(os.path.join(os.fsencode(folder), raw_name), os.O_WRONLY | os.O_CREAT, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(content)


def test_each_failure_has_a_readable_reason_and_the_batch_goes_on(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "good.ipynb").write_text(notebook_text())
    (batch / "badjson").mkdir()
    (batch / "badjson" / "CNNMNIST.ipynb").write_text('{\n "cells": [],\n    x}')
    (batch / "empty.ipynb").write_text("")
    (batch / "old.ipynb").write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []}))
    broken = json.loads(notebook_text())
    broken["cells"][0]["cell_type"] = "bogus"
    (batch / "schema.ipynb").write_text(json.dumps(broken))
    (batch / "latin1.py").write_bytes("x = 1\n# café\n".encode("latin-1"))
    (batch / "pdfonly").mkdir()
    (batch / "pdfonly" / "ex2.pdf").write_bytes(b"%PDF-1.4")
    (batch / "corrupt.zip").write_bytes(b"PK\3\4 this is not really a zip")
    (batch / "huge.ipynb").touch()
    os.truncate(batch / "huge.ipynb", 200 * 1000 * 1000)  # sparse: takes no disk space
    (batch / "weird").mkdir()
    write_non_utf8_name(batch / "weird", b"caf\xe9.ipynb", notebook_text().encode())
    results = by_student(load_batch(batch, tmp_path / "staging"))

    assert ok(results["good"]).files == ("good.ipynb",)
    reasons = {student: failed(r).reason for student, r in results.items() if student != "good"}
    assert reasons["badjson"] == (
        "CNNMNIST.ipynb is not a notebook: invalid JSON (line 3, column 5): "
        "Expecting property name enclosed in double quotes"
    )
    assert reasons["empty"] == "empty.ipynb is empty (0 bytes)"
    assert reasons["old"].startswith("old.ipynb is saved as nbformat 3, an old notebook format")
    assert "so that it is nbformat 4" in reasons["old"]
    assert reasons["schema"] == "schema.ipynb is not a valid notebook: cell 0.cell_type: 'bogus' is not one of ['code']"
    assert reasons["latin1"] == (
        "latin1.py is not UTF-8 text: byte 0xe9 on line 2 cannot be decoded; save the file as UTF-8"
    )
    assert reasons["pdfonly"] == "the submission holds no notebook (.ipynb) or Python file (.py); it holds: ex2.pdf"
    assert reasons["corrupt"].startswith("corrupt.zip is not a valid zip archive (")
    assert reasons["huge"] == "huge.ipynb is 190.7 MiB, over the 100.0 MiB limit for one file"
    assert reasons["weird"] == (
        "no notebook (.ipynb) or Python file (.py) could be staged: skipped 'caf\\xe9.ipynb': its name is not "
        "valid UTF-8 (byte 0xe9; was it zipped or saved with a Windows code page?): "
        "rename it with UTF-8 characters only"
    )
    # Failed submissions leave nothing staged.
    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == ["good"]


def test_non_utf8_student_file_name_is_reported_readably(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    write_non_utf8_name(batch, b"m\xfcller.ipynb", notebook_text().encode())
    (result,) = load_batch(batch, tmp_path / "staging")
    failure = failed(result)
    assert failure.student == "m\\xfcller"
    assert "skipped 'm\\xfcller.ipynb': its name is not valid UTF-8 (byte 0xfc" in failure.reason


def test_non_utf8_name_inside_a_zip(tmp_path: Path) -> None:
    data = zip_bytes({"cafX.ipynb": notebook_text()}).replace(b"cafX.ipynb", b"caf\xe9.ipynb")
    source = tmp_path / "alice.zip"
    source.write_bytes(data)
    failure = failed(load_submission(source, tmp_path / "staging"))
    assert "skipped 'caf\\xe9.ipynb' (in alice.zip): its name is not valid UTF-8 (byte 0xe9" in failure.reason


def test_empty_lone_module_fails_but_empty_init_is_fine(tmp_path: Path) -> None:
    (tmp_path / "q1.py").write_text("")
    assert failed(load_submission(tmp_path / "q1.py", tmp_path / "staging")).reason == "q1.py is empty (0 bytes)"
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "net.py").write_text("n = 1\n")
    assert ok(load_submission(package, tmp_path / "staging")).kind == "package"


def test_binary_file_named_py_is_refused_without_running_it(tmp_path: Path) -> None:
    (tmp_path / "q2.py").write_bytes(b"\x7fELF\0\0\0binary")
    failure = failed(load_submission(tmp_path / "q2.py", tmp_path / "staging"))
    assert failure.reason.startswith("q2.py is not a Python text file: it contains NUL bytes")


def test_notebook_and_python_checks_accept_good_files() -> None:
    assert loading.notebook_problem(notebook_text().encode(), "a.ipynb") is None
    assert loading.python_problem("print('héllo')\n".encode(), "a.py", lone=True) is None
    not_a_notebook = loading.notebook_problem(b"[1, 2]", "a.ipynb")
    assert not_a_notebook == "a.ipynb is not a notebook: it is JSON but has no 'nbformat' field"


# ------------------------------------------------------------------------------------------ hostile


def test_zip_slip_entries_never_escape(tmp_path: Path) -> None:
    source = tmp_path / "uploads" / "mallory.zip"
    source.parent.mkdir()
    make_zip(source, {
        "CNNMNIST.ipynb": notebook_text(),
        "../evil.py": "x = 1\n",
        "../../evil2.py": "x = 1\n",
        "/tmp/abs_evil.py": "x = 1\n",
        "sub/../../evil3.py": "x = 1\n",
        "..\\evil4.py": "x = 1\n",
    })
    before = files_under(tmp_path)
    sub = ok(load_submission(source, tmp_path / "staging"))
    assert sub.files == ("CNNMNIST.ipynb",)
    assert files_under(tmp_path) - before == {"staging/mallory/CNNMNIST.ipynb"}
    assert not Path("/tmp/abs_evil.py").exists()
    assert sub.warnings == (
        "skipped zip entry '../evil.py' in mallory.zip: its path leaves the submission folder",
        "skipped zip entry '../../evil2.py' in mallory.zip: its path leaves the submission folder",
        "skipped zip entry '/tmp/abs_evil.py' in mallory.zip: it has an absolute path",
        "skipped zip entry 'sub/../../evil3.py' in mallory.zip: its path leaves the submission folder",
        "skipped zip entry '..\\evil4.py' in mallory.zip: its path leaves the submission folder",
    )


def test_zip_slip_in_a_bulk_zip_is_reported_and_others_load(tmp_path: Path) -> None:
    bulk = make_zip(tmp_path / "bulk.zip", {"alice_1_2_q1.py": "a = 1\n", "../../escape_1_2_q1.py": "b = 1\n"})
    before = files_under(tmp_path)
    results = by_student(load_batch(bulk, tmp_path / "staging"))
    assert ok(results["alice_1"]).files == ("q1.py",)
    assert failed(results["../../escape_1_2_q1.py"]).reason.endswith("its path leaves the submission folder")
    assert files_under(tmp_path) - before == {"staging/alice_1/q1.py"}


def test_symlink_inside_a_zip_is_skipped(tmp_path: Path) -> None:
    source = tmp_path / "eve.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("CNNMNIST.ipynb", notebook_text())
        link = zipfile.ZipInfo("passwd")
        link.create_system = 3  # Unix, so the mode bits count
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    sub = ok(load_submission(source, tmp_path / "staging"))
    assert sub.files == ("CNNMNIST.ipynb",)
    assert sub.warnings == ("skipped zip entry 'passwd' in eve.zip: it is a symbolic link",)


def test_symlinks_in_a_folder_leaving_it_are_skipped(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TA's private key")
    folder = tmp_path / "eve"
    folder.mkdir()
    (folder / "CNNMNIST.ipynb").write_text(notebook_text())
    (folder / "stolen.txt").symlink_to(secret)
    (folder / "home").symlink_to(tmp_path)
    (folder / "copy.ipynb").symlink_to(folder / "CNNMNIST.ipynb")
    os.mkfifo(folder / "pipe")
    sub = ok(load_submission(folder, tmp_path / "staging"))
    assert sub.files == ("CNNMNIST.ipynb", "copy.ipynb")
    assert not (sub.root / "copy.ipynb").is_symlink()
    assert f"skipped symlink stolen.txt -> {secret}: it points outside the submission" in sub.warnings
    assert f"skipped symlink home -> {tmp_path}: it points outside the submission" in sub.warnings
    assert "skipped pipe: it is not a regular file (a pipe, socket or device)" in sub.warnings
    assert "TA's private key" not in "".join(p.read_text() for p in sub.root.rglob("*") if p.is_file())


def test_top_level_symlink_out_of_a_batch_folder_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.py"
    elsewhere.write_text("x = 1\n")
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "alice.py").write_text("a = 1\n")
    (batch / "eve.py").symlink_to(elsewhere)
    results = by_student(load_batch(batch, tmp_path / "staging"))
    assert ok(results["alice"]).files == ("alice.py",)
    assert "outside the batch folder; it was not followed" in failed(results["eve"]).reason


def test_zip_bomb_is_stopped_quickly(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    zeros = bytes(MiB)
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("CNNMNIST.ipynb", notebook_text())
        with archive.open("weights.bin", "w", force_zip64=True) as entry:
            for _ in range(600):
                entry.write(zeros)
    assert bomb.stat().st_size < 5 * MiB
    started = time.perf_counter()
    failure = failed(load_submission(bomb, tmp_path / "staging"))
    assert time.perf_counter() - started < 5.0
    assert failure.reason == "bomb.zip: weights.bin is 600.0 MiB, over the 100.0 MiB limit for one file"
    assert bytes_under(tmp_path / "staging") < MiB


def test_many_small_entries_over_the_total_are_stopped(tmp_path: Path) -> None:
    rng = random.Random(0)
    # Two letters at random: compresses about 7 times, far from the zip-bomb ratio.
    entries: dict[str, str | bytes] = {f"part{i}.txt": "".join(rng.choices("ab", k=300 * 1024)) for i in range(6)}
    entries["CNNMNIST.ipynb"] = notebook_text()
    source = make_zip(tmp_path / "big.zip", entries)
    failure = failed(load_submission(source, tmp_path / "staging", limits=LoadLimits(max_total_bytes=1 * MiB)))
    assert failure.reason.startswith("big.zip: the submission expands to 1.8 MiB, over the 1.0 MiB limit")
    assert bytes_under(tmp_path / "staging") == 0


def test_highly_compressed_entry_is_refused_as_a_zip_bomb(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "ratio.zip", {"CNNMNIST.ipynb": notebook_text(), "zeros.bin": bytes(20 * MiB)})
    failure = failed(load_submission(source, tmp_path / "staging"))
    assert "zeros.bin expands from" in failure.reason
    assert failure.reason.endswith("over the 200x compression limit: refused as a zip bomb")


def test_a_bomb_inside_a_bulk_zip_fails_only_its_student(tmp_path: Path) -> None:
    bomb = zip_bytes({"q1.py": "x = 1\n", "zeros.bin": bytes(20 * MiB)})
    bulk = make_zip(tmp_path / "bulk.zip", {
        "alice/CNNMNIST.ipynb": notebook_text(),
        "bob_1_2_ex2.zip": bomb,
        "carol_3_4_q1.py": "c = 1\n",
    })
    results = by_student(load_batch(bulk, tmp_path / "staging"))
    assert ok(results["alice"]).files == ("CNNMNIST.ipynb",)
    assert ok(results["carol_3"]).files == ("q1.py",)
    reason = failed(results["bob_1"]).reason
    assert reason.startswith("bob_1_2_ex2.zip: zeros.bin expands from ")
    assert reason.endswith("refused as a zip bomb")
    assert not (tmp_path / "staging" / "bob_1").exists()


def test_folder_with_too_many_files_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "spam"
    folder.mkdir()
    for i in range(30):
        (folder / f"f{i}.py").write_text("x = 1\n")
    failure = failed(load_submission(folder, tmp_path / "staging", limits=LoadLimits(max_entries=20)))
    assert failure.reason == "the submission holds more than 20 files and folders, over the limit"


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "many.zip", {f"f{i}.py": "x = 1\n" for i in range(50)})
    failure = failed(load_submission(source, tmp_path / "staging", limits=LoadLimits(max_entries=10)))
    assert failure.reason == "many.zip holds 50 entries, over the limit of 10"


def understate_sizes(path: Path, fake_size: int) -> None:
    """Rewrite a (non-zip64) zip's headers so that every entry claims ``fake_size`` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        start_dir = archive.start_dir  # offset of the central directory
    for info in infos:
        struct.pack_into("<I", data, info.header_offset + 22, fake_size)  # local header: uncompressed size
    offset = start_dir
    for _ in infos:
        assert data[offset : offset + 4] == b"PK\1\2"
        struct.pack_into("<I", data, offset + 24, fake_size)  # central directory: uncompressed size
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, offset + 28)
        offset += 46 + name_len + extra_len + comment_len
    path.write_bytes(bytes(data))


def test_lying_headers_do_not_get_past_the_real_byte_count(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "liar.zip", {"zeros.bin": bytes(30 * MiB), "q1.py": "x = 1\n"})
    understate_sizes(source, 100)
    failure = failed(load_submission(source, tmp_path / "staging"))
    assert "zeros.bin" in failure.reason
    assert bytes_under(tmp_path / "staging") < MiB


def test_copy_counts_real_bytes_whatever_the_header_says(tmp_path: Path) -> None:
    stream = io.BytesIO(bytes(8 * MiB))
    member = common._Member(parts=("x.bin",), label="x.bin", size=10, compressed_size=1000, open=lambda: stream)
    out = io.BytesIO()
    with pytest.raises(common._Rejected, match=r"x.bin expands from 1000 bytes to more than 2.0 MiB"):
        archives._copy_bounded(stream, out, member, LoadLimits(), common._Budget())
    assert len(out.getvalue()) <= 1 * MiB
    big = io.BytesIO(bytes(3 * MiB))
    plain = common._Member(parts=("y.bin",), label="y.bin", size=10, open=lambda: big)
    with pytest.raises(common._Rejected, match=r"y.bin is larger than 2.0 MiB \(announced as 10 bytes\)"):
        archives._copy_bounded(big, io.BytesIO(), plain, LoadLimits(max_file_bytes=2 * MiB), common._Budget())


# ------------------------------------------------------------------------------------------ hashing


def test_content_hash_is_stable_and_sensitive(tmp_path: Path) -> None:
    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / "CNNMNIST.ipynb").write_text(notebook_text())
    (folder / "helpers.py").write_text("h = 1\n")
    zipped = make_zip(tmp_path / "bob.zip", {
        "bob/CNNMNIST.ipynb": notebook_text(), "bob/helpers.py": "h = 1\n",
    })
    first = ok(load_submission(folder, tmp_path / "s1"))
    again = ok(load_submission(folder, tmp_path / "s2"))
    from_zip = ok(load_submission(zipped, tmp_path / "s3"))
    assert first.content_hash == again.content_hash == from_zip.content_hash
    assert content_hash(first.root, list(reversed(first.files))) == first.content_hash

    (folder / "helpers.py").write_text("h = 2\n")
    changed = ok(load_submission(folder, tmp_path / "s4"))
    assert changed.content_hash != first.content_hash
    (folder / "helpers.py").write_text("h = 1\n")
    (folder / "helpers.py").rename(folder / "helper.py")
    renamed = ok(load_submission(folder, tmp_path / "s5"))
    assert renamed.content_hash != first.content_hash
    # Moving bytes from one file's end to the next file's name must not collide.
    assert content_hash(first.root, ["CNNMNIST.ipynb"]) != first.content_hash


# ------------------------------------------------------------------------ inputs that crashed a batch


def notebook_json(source: str = "x = 1") -> dict:
    """The JSON of ``notebook_text(source)``, to be made malformed."""
    return json.loads(notebook_text(source))


def test_deeply_nested_cells_fail_only_their_student(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "alice.ipynb").write_text(notebook_text())
    deep = '{"cells": ' + "[" * 1000 + "]" * 1000 + ', "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    assert len(deep) < 2100  # the 2 KB file that used to raise RecursionError out of load_batch
    (batch / "deep.ipynb").write_text(deep)
    nested_metadata = notebook_json()
    nested_metadata["metadata"]["widgets"] = json.loads("[" * 500 + "]" * 500)  # parses, but nbformat recurses
    (batch / "widgets.ipynb").write_text(json.dumps(nested_metadata))
    results = by_student(load_batch(batch, tmp_path / "staging"))
    assert ok(results["alice"]).files == ("alice.ipynb",)
    assert failed(results["deep"]).reason == "deep.ipynb is not a notebook: its JSON is nested more than 64 levels deep"
    assert failed(results["widgets"]).reason.startswith(
        "widgets.ipynb is not a notebook: its JSON is nested more than 64 levels deep (at metadata.widgets.0.0"
    )


@pytest.mark.parametrize("field", ["nbformat", "execution_count"])
def test_an_integer_of_thousands_of_digits_fails_only_its_student(tmp_path: Path, field: str) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "alice.ipynb").write_text(notebook_text())
    text = json.dumps(notebook_json())
    text = text.replace('"nbformat": 4', '"nbformat": ' + "4" * 5000) if field == "nbformat" else text.replace(
        '"execution_count": null', '"execution_count": ' + "1" * 5000
    )
    (batch / "huge.ipynb").write_text(text)
    results = by_student(load_batch(batch, tmp_path / "staging"))
    assert ok(results["alice"]).files == ("alice.ipynb",)
    assert failed(results["huge"]).reason == "huge.ipynb is not a notebook: it holds a number of more than 4,300 digits"


def test_a_lone_surrogate_escape_is_refused_before_it_reaches_a_report(tmp_path: Path) -> None:
    source = tmp_path / "CNNMNIST.ipynb"
    source.write_text(json.dumps(notebook_json("s = 'ok'")).replace("ok", "\\ud800"))
    failure = failed(load_submission(source, tmp_path / "staging"))
    assert failure.reason == (
        "CNNMNIST.ipynb is not a notebook: cell 0.source[0] holds an invalid escaped character "
        "(a lone UTF-16 surrogate such as \\ud800); save the notebook again from Jupyter"
    )


def test_symlink_loops_at_the_top_of_a_batch_fail_only_themselves(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "alice.ipynb").write_text(notebook_text())
    (batch / "loop").symlink_to("loop")
    (batch / "a").symlink_to("b")
    (batch / "b").symlink_to("a")
    (batch / "gone.ipynb").symlink_to("nothing-here.ipynb")
    results = by_student(load_batch(batch, tmp_path / "staging"))
    assert ok(results["alice"]).files == ("alice.ipynb",)
    loops = "which leads nowhere (too many levels of symbolic links); it was not followed"
    assert failed(results["loop"]).reason == f"loop is a symbolic link to loop, {loops}"
    assert failed(results["a"]).reason == f"a is a symbolic link to b, {loops}"
    assert failed(results["b"]).reason == f"b is a symbolic link to a, {loops}"
    assert failed(results["gone"]).reason == (
        "gone.ipynb is a symbolic link to nothing-here.ipynb, which leads nowhere (no such file or directory); "
        "it was not followed"
    )


def test_symlink_loops_inside_a_student_folder_are_skipped(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    (batch / "alice").mkdir(parents=True)
    (batch / "alice" / "CNNMNIST.ipynb").write_text(notebook_text())
    (batch / "alice" / "loop").symlink_to("loop")
    (batch / "alice" / "a").symlink_to("b")
    (batch / "alice" / "b").symlink_to("a")
    (result,) = load_batch(batch, tmp_path / "staging")
    sub = ok(result)
    assert sub.files == ("CNNMNIST.ipynb",)
    assert sub.warnings == (
        "skipped symlink a -> b: it points to nothing readable",
        "skipped symlink b -> a: it points to nothing readable",
        "skipped symlink loop -> loop: it points to nothing readable",
    )


def test_folders_nested_too_deep_are_skipped_not_recursed_into(tmp_path: Path) -> None:
    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / "CNNMNIST.ipynb").write_text(notebook_text())
    deep = folder.joinpath(*["d"] * 200)
    deep.mkdir(parents=True)
    (deep / "x.py").write_text("x = 1\n")
    sub = ok(load_submission(folder, tmp_path / "staging"))
    assert sub.files == ("CNNMNIST.ipynb",)
    assert sub.warnings == (f"skipped '{'/'.join(['d'] * 32)}/': it lies more than 32 folders deep",)
    zipped = make_zip(tmp_path / "bob.zip", {"CNNMNIST.ipynb": notebook_text(), "/".join(["d"] * 40) + "/x.py": "x"})
    sub = ok(load_submission(zipped, tmp_path / "staging"))
    assert sub.files == ("CNNMNIST.ipynb",)
    assert sub.warnings == (f"skipped '{'/'.join(['d'] * 40)}/x.py' (in bob.zip): it lies more than 32 folders deep",)


def test_an_unforeseen_error_fails_one_student_as_a_grader_fault(tmp_path: Path, monkeypatch) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "alice.ipynb").write_text(notebook_text())
    (batch / "bob.ipynb").write_text(notebook_text("y = 2"))
    real = loading.notebook_problem

    def broken_for_bob(data: bytes, name: str) -> str | None:
        if name == "bob.ipynb":
            raise KeyError("a bug in the grader")
        return real(data, name)

    monkeypatch.setattr(validation, "notebook_problem", broken_for_bob)  # _validate looks it up in its own module
    results = by_student(load_batch(batch, tmp_path / "staging"))
    assert ok(results["alice"]).files == ("alice.ipynb",)
    assert failed(results["bob"]).reason == f"{loading.GRADER_FAULT}: KeyError: 'a bug in the grader'"


# -------------------------------------------------------------------- names and encodings


def test_a_byte_order_mark_is_dropped_so_the_runner_reads_what_loading_accepted(tmp_path: Path) -> None:
    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / "CNNMNIST.ipynb").write_bytes(b"\xef\xbb\xbf" + notebook_text("print('hi')").encode())
    (folder / "helpers.py").write_bytes(b"\xef\xbb\xbfdef helper():\n    return 1\n")
    sub = ok(load_submission(folder, tmp_path / "staging"))
    assert (sub.root / "CNNMNIST.ipynb").read_bytes() == notebook_text("print('hi')").encode()
    assert (sub.root / "helpers.py").read_bytes() == b"def helper():\n    return 1\n"
    # What harness/engines/runner.py does with them: nbformat.read and exec of the UTF-8 text.
    assert nbformat.read(sub.root / "CNNMNIST.ipynb", as_version=4).cells[0].source == "print('hi')"
    compile((sub.root / "helpers.py").read_text(encoding="utf-8"), "helpers.py", "exec")
    # The same files without the mark are the same submission.
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "CNNMNIST.ipynb").write_text(notebook_text("print('hi')"))
    (plain / "helpers.py").write_text("def helper():\n    return 1\n")
    assert ok(load_submission(plain, tmp_path / "staging")).content_hash == sub.content_hash


def test_a_non_utf8_name_is_skipped_and_the_rest_graded(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    (batch / "alice").mkdir(parents=True)
    (batch / "alice" / "CNNMNIST.ipynb").write_text(notebook_text())
    write_non_utf8_name(batch / "alice", b"notes-caf\xe9.py", b"x = 1\n")
    jurgen = os.path.join(os.fsencode(batch), b"j\xfcrgen")
    os.mkdir(jurgen)
    write_non_utf8_name(Path(os.fsdecode(jurgen)), b"CNNMNIST.ipynb", notebook_text().encode())
    results = by_student(load_batch(batch, tmp_path / "staging"))
    alice = ok(results["alice"])
    assert alice.files == ("CNNMNIST.ipynb",)
    assert alice.warnings == (
        "skipped 'notes-caf\\xe9.py': its name is not valid UTF-8 (byte 0xe9; was it zipped or saved with a "
        "Windows code page?): rename it with UTF-8 characters only",
    )
    # A student folder with such a name is graded under a readable name.
    assert ok(results["j\\xfcrgen"]).files == ("CNNMNIST.ipynb",)


def test_entries_failing_at_the_top_of_a_batch_still_get_names_of_their_own(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "x.py").symlink_to("/etc/hostname")
    (batch / "x.ipynb").symlink_to("/etc/hostname")
    results = by_student(load_batch(batch, tmp_path / "staging"))  # one report each: none overwrites another
    assert sorted(results) == ["x.ipynb", "x.py"]
    assert failed(results["x.py"]).reason == (
        "x.py is a symbolic link to /etc/hostname, outside the batch folder; it was not followed"
    )
