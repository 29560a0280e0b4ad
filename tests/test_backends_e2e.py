"""The same batch graded in threads, in worker processes and on a two-node Ray cluster gives the same reports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.pipeline import grade_batch, prepare_setup
from harness.sandbox import make_sandbox
from tests.script_rubric import SCRIPT, SCRIPTS, cnn_script_rubric

FAILING = SCRIPTS / "raises_after_model.py"

RUBRIC = cnn_script_rubric(
    "backends-demo",
    "      - {check: runs_without_error, points: 1}\n"
    "      - {check: architecture_matches, points: 1}\n"
    "      - {check: parameter_count, equals: 12810, points: 1}\n",
    sources="[cnn_script.py, raises_after_model.py]",
    spec=True,
)


def _what_was_graded(summary) -> dict[str, list[tuple[str, str, str, float, str]]]:
    """Per student, every check's outcome (timings left out: they differ from run to run)."""
    return {
        report.student: [(t.task, c.check, c.status, c.score, c.message) for t in report.tasks for c in t.checks]
        for report in summary.reports
    }


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    for student, script in (("ann", SCRIPT), ("cho", FAILING)):
        (folder / student).mkdir()
        shutil.copy(script, folder / student / script.name)
    return folder


def _grade(batch: Path, small_data: Path, out: Path, **options):
    rubric = out.parent / f"{out.name}.yaml"
    rubric.write_text(RUBRIC, encoding="utf-8")
    setup = prepare_setup(rubric, small_data, out, sandbox=make_sandbox("auto"), profile="fast")
    return grade_batch(batch, setup, jobs=2, **options)


@pytest.fixture(scope="module")
def by_threads(batch: Path, small_data: Path, tmp_path_factory):
    return _grade(batch, small_data, tmp_path_factory.mktemp("threads") / "out")


def test_threads_grade_the_batch(by_threads) -> None:
    graded = _what_was_graded(by_threads)
    assert by_threads.graded == 2 and not by_threads.faults
    assert [status for *_, status, _, _ in graded["ann"]] == ["passed", "passed", "passed"]
    assert graded["cho"][0][2] == "failed"  # the script raises after building its model


def test_worker_processes_give_the_same_reports(batch: Path, small_data: Path, tmp_path, by_threads) -> None:
    summary = _grade(batch, small_data, tmp_path / "out", backend="processes")
    assert summary.graded == 2 and not summary.faults
    assert _what_was_graded(summary) == _what_was_graded(by_threads)


def test_a_two_node_ray_cluster_gives_the_same_reports(batch: Path, small_data: Path, tmp_path, by_threads) -> None:
    import ray  # a dev dependency: CI must have it, so no skip
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        summary = _grade(batch, small_data, tmp_path / "out", backend="ray", ray_address=cluster.address)
        assert summary.graded == 2 and not summary.faults
        assert _what_was_graded(summary) == _what_was_graded(by_threads)
        assert not ray.is_initialized()  # the backend disconnected when the batch was done
    finally:
        cluster.shutdown()
