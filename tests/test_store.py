"""The results store: lossless round trips, upserts, concurrent writers, reopening, damaged files."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import StoreError
from harness.models import CellError, CheckResult, ExecutionResult, GradeReport, SandboxResult, TaskScore
from harness.store import ResultStore, readable_report, report_from_dict, report_to_dict


def rich_report(student: str = "smithjohn_12345", content_hash: str = "c0ffee", score: float = 0.5) -> GradeReport:
    """A report using every kind of field: executions with errors, artifacts, details, manual items."""
    sandbox = SandboxResult(
        verdict="error", message="exit code 1", returncode=1, wall_s=12.25, cpu_s=11.5,
        peak_memory_bytes=734_003_200, stdout="epoch 1: loss 0.31\n", stderr="Traceback ...\nNameError: x", isolated=True,
    )
    execution = ExecutionResult(
        source="CNNMNIST.ipynb", sandbox=sandbox, cells_run=7, cells_total=9,
        errors=(CellError(cell=6, ename="NameError", evalue="name 'net' is not defined", source_excerpt="net.eval()"),),
        artifacts_dir=Path("/tmp/gradebench/artifacts/c0ffee/CNNMNIST"),
    )
    timeout = ExecutionResult(
        source="VAE.ipynb",
        sandbox=SandboxResult("timeout", "timed out after 300 s", None, 300.0, 299.0, 0, "", "", False),
    )
    checks = (
        CheckResult("cnn", "parameter_count", "passed", "", 1.0, 1.0, {"got": 12810, "expected": 12810}),
        CheckResult(
            "cnn", "feature_width", "failed",
            "Linear layer expects 800 input features but your Flatten produces 1568: did you drop the second MaxPool2d?",
            2.0, score, {"got": 1568, "shape": [64, 32, 7, 7], "diff": {"missing": ["MaxPool2d"], "ratio": 1.96}, "none": None},
        ),
        CheckResult("cnn", "test_accuracy", "skipped", "the model never came to exist", 3.0, 0.0),
    )
    tasks = (
        TaskScore("cnn", "1.3 CNN on MNIST", 1.0 + score, 6.0, checks=checks),
        TaskScore("cnn-why-800", "Why 800 features? (æøå)", 1.5, 2.0, manual=True, note="almost: padding"),
    )
    return GradeReport(
        student=student, assignment="dl2025-a2", content_hash=content_hash, rubric_hash="r" * 64,
        profile="full", tasks=tasks, executions=(execution, timeout),
        load_warnings=("handed in late (the LMS marked the upload LATE)",
                       "skipped zip entry '../../x' in eve.zip: its path leaves the submission folder"),
    )


def test_report_dict_round_trip_is_lossless() -> None:
    report = rich_report()
    data = report_to_dict(report)
    assert json.loads(json.dumps(data)) == data  # JSON-ready
    assert data["executions"][0]["artifacts_dir"] == "/tmp/gradebench/artifacts/c0ffee/CNNMNIST"
    assert (data["score"], data["points"]) == (3.0, 8.0)
    back = report_from_dict(json.loads(json.dumps(data)))
    assert back == report
    assert isinstance(back.executions[0].artifacts_dir, Path)
    assert isinstance(back.tasks[0].checks, tuple) and isinstance(back.executions[0].errors[0], CellError)
    assert back.executions[1].artifacts_dir is None and back.executions[1].sandbox.returncode is None


def test_report_from_dict_rejects_unknown_fields() -> None:
    data = report_to_dict(rich_report())
    data["tasks"][0]["bonus"] = 1
    with pytest.raises(ValueError, match=r"report\.tasks\[0\]: unknown field\(s\) \['bonus'\] for TaskScore"):
        report_from_dict(data)


def test_numpy_values_in_details_are_stored_as_plain_numbers() -> None:
    import numpy as np

    check = CheckResult("cnn", "test_accuracy", "passed", "", 1.0, 1.0, {"accuracy": np.float32(0.5), "per_class": np.arange(3)})
    report = replace(rich_report(), tasks=(TaskScore("cnn", "CNN", 1.0, 1.0, checks=(check,)),))
    assert report_to_dict(report)["tasks"][0]["checks"][0]["details"] == {"accuracy": 0.5, "per_class": [0, 1, 2]}


def test_put_get_and_miss(tmp_path: Path) -> None:
    report = rich_report()
    with ResultStore(tmp_path / "results.sqlite") as store:
        assert store.get("c0ffee", "r" * 64, "full") is None
        store.put(report)
        assert store.get("c0ffee", "r" * 64, "full") == report
        assert store.get("c0ffee", "r" * 64, "fast") is None
        assert store.get("c0ffee", "s" * 64, "full") is None
        assert store.get("beef", "r" * 64, "full") is None
        assert len(store) == 1
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_put_is_an_upsert(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "results.sqlite") as store:
        store.put(rich_report(score=0.0))
        store.put(rich_report(score=2.0))
        assert len(store) == 1
        stored = store.get("c0ffee", "r" * 64, "full")
        assert stored is not None and stored.score == 4.5
        row = sqlite3.connect(tmp_path / "results.sqlite").execute("SELECT student, score, points FROM reports").fetchall()
        assert row == [("smithjohn_12345", 4.5, 8.0)]


def test_all_and_delete(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "results.sqlite") as store:
        store.put(rich_report("b_2", "h2"))
        store.put(rich_report("a_1", "h1"))
        store.put(replace(rich_report("a_1", "h1"), profile="fast"))
        store.put(replace(rich_report("c_3", "h3"), rubric_hash="other"))
        assert [(r.student, r.profile) for r in store.all()] == [("a_1", "fast"), ("a_1", "full"), ("b_2", "full"), ("c_3", "full")]
        assert [r.student for r in store.all(rubric_hash="other")] == ["c_3"]
        assert store.delete("h1", "r" * 64, "fast") == 1
        assert store.get("h1", "r" * 64, "full") is not None
        assert store.delete("h1") == 1
        assert store.delete("h1") == 0
        assert [r.student for r in store.all()] == ["b_2", "c_3"]


def test_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "results.sqlite"
    store = ResultStore(path)
    store.put(rich_report())
    store.close()
    store.close()  # harmless
    with pytest.raises(StoreError, match="closed"):
        store.get("c0ffee", "r" * 64, "full")
    with ResultStore(path) as again:
        assert again.get("c0ffee", "r" * 64, "full") == rich_report()


def _write_many(path: str, worker: int, count: int, start: multiprocessing.synchronize.Barrier) -> None:
    """Put ``count`` reports from one process, starting together with the other writers."""
    with ResultStore(path) as store:
        start.wait()
        for i in range(count):
            store.put(rich_report(f"w{worker}_{i:03d}", f"{worker}-{i}"))


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    workers = [ctx.Process(target=_write_many, args=(str(path), w, 40, start)) for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0]
    with ResultStore(path) as store:
        reports = store.all()
    assert len(reports) == 80
    assert {r.content_hash for r in reports} == {f"{w}-{i}" for w in range(2) for i in range(40)}
    assert reports[0] == rich_report("w0_000", "0-0")


def test_corrupt_file_raises_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"this is not an SQLite database, it is a text file " * 200)
    with pytest.raises(StoreError, match=rf"^{path}: not a readable results store \(file is not a database\)$"):
        ResultStore(path)


def test_a_folder_or_foreign_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder"):
        ResultStore(tmp_path)
    foreign = tmp_path / "other.sqlite"
    sqlite3.connect(foreign).executescript("CREATE TABLE reports (id INTEGER); ")
    with pytest.raises(StoreError, match=r"other\.sqlite: has a 'reports' table that is not a results store's"):
        ResultStore(foreign)


def test_a_damaged_row_names_the_store_and_key(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        store.put(rich_report())
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE reports SET report = '{\"student\": 1'")
    with ResultStore(path) as store, pytest.raises(StoreError, match=r"results\.sqlite: the stored report for \('c0ffee'"):
        store.all()


def test_lone_surrogates_are_stored_as_readable_escapes(tmp_path: Path) -> None:
    """A model kept under ``globals()['m\\udcff']`` or an error message with '\\ud800' cannot crash the store."""
    report = rich_report(student="m\udcffller")
    check = CheckResult("cnn", "architecture_matches", "failed", "model `m\udcff` has no Conv2d", 2.0, 0.0,
                        {"candidates": {"m\udcff": "Sequential"}})
    report = replace(report, tasks=(replace(report.tasks[0], checks=(check,)), report.tasks[1]))
    with ResultStore(tmp_path / "results.sqlite") as store:
        store.put(report)
        (back,) = store.all()
    assert back.student == "m\\udcffller"
    assert back.tasks[0].checks[0].message == "model `m\\udcff` has no Conv2d"
    assert back.tasks[0].checks[0].details == {"candidates": {"m\\udcff": "Sequential"}}
    assert readable_report(rich_report()) == rich_report()  # clean reports pass through unchanged


def test_a_report_stored_before_loading_warnings_existed_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    report = rich_report()
    with ResultStore(path) as store:
        store.put(report)
    older = report_to_dict(report)
    del older["load_warnings"]  # what an earlier gradebench wrote
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE reports SET report = ?", (json.dumps(older),))
    with ResultStore(path) as store:
        back = store.get(report.content_hash, report.rubric_hash, report.profile)
    assert back == replace(report, load_warnings=())


def test_held_points_and_the_tas_review_survive_the_store(tmp_path) -> None:
    """Rescoring after a review reads the stored check results: their held reason must come back."""
    from tests.test_reporting import _held_report

    report = _held_report({})
    with ResultStore(tmp_path / "results.sqlite") as store:
        store.put(report)
        back = store.get(report.content_hash, report.rubric_hash, report.profile)
    assert back == report == report_from_dict(report_to_dict(report))
    assert (back.tasks[0].held, back.tasks[0].review, back.held_points) == (3.0, "pending", 3.0)
    assert back.tasks[0].checks[1].held.startswith("the grader could not rebuild your model")


def test_a_full_disk_is_named_and_the_store_survives_it(tmp_path: Path) -> None:
    """SQLite says only "disk I/O error" when the disk under a store is full: the TA must read that the disk is full
    (not that the store is unreadable, which invites deleting it), and the store reads whole once space is freed."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root, to mount a small file system and fill it")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "gradebench-test-full", str(disk)], check=True)
    try:
        path = disk / "results.sqlite"
        with ResultStore(path) as store:
            store.put(rich_report())
        filler = disk / "filler"
        with pytest.raises(OSError, match="No space left on device"):
            with open(filler, "wb") as stream:
                while True:
                    stream.write(b"\0" * 4096)
                    stream.flush()
        with pytest.raises(StoreError) as full:
            ResultStore(path)
        assert str(full.value).startswith(
            f"{path}: cannot open the results store: the disk holding it is full (0 KiB free); free some space and "
            "run the same command again (SQLite said: ")
        filler.unlink()
        with ResultStore(path) as store:
            assert store.all() == [rich_report()]
    finally:
        subprocess.run(["umount", str(disk)], check=True)
