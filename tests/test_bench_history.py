"""The benchmark history: the store, the comparison with the baseline, the page, and `gradebench bench`."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.bench import (
    BenchRun,
    Environment,
    HistoryStore,
    TaskResult,
    Tolerances,
    compare,
    measured_metrics,
    render_history,
    run_from_calibration,
    timing_notes,
)
from harness.cli import app
from harness.errors import StoreError

HERE = Environment(
    cpu_model="Example CPU 3000", cpu_count=8, threads=1, torch="2.4.0", python="3.11.7", gradebench="0.1.0",
    gpu=None, git_commit="0123456789ab", platform="Linux-x86_64",
)


def run(*results: TaskResult, environment: Environment = HERE, profile: str = "fast", created: str = "2026-12-01T10:00:00+00:00") -> BenchRun:
    """A benchmark run made up for a test (no training)."""
    return BenchRun(created=created, profile=profile, environment=environment, results=results)


def cnn(accuracy: float = 0.97, loss: float = 0.10, wall: float = 10.0) -> TaskResult:
    return TaskResult("mnist-cnn", {"test_accuracy": accuracy, "test_loss": loss, "test_kl": 3.0}, wall)


def ff(accuracy: float = 0.95, wall: float = 5.0) -> TaskResult:
    return TaskResult("mnist-ff", {"test_accuracy": accuracy}, wall)


def history_with_baseline(tmp_path: Path, *results: TaskResult) -> tuple[HistoryStore, list[BenchRun]]:
    """A history holding one run (which becomes the baseline), and the stored runs."""
    store = HistoryStore(tmp_path / "history.sqlite")
    store.add(run(*(results or (ff(), cnn()))))
    return store, store.runs("fast")


def by_metric(comparisons, task: str, metric: str):
    (row,) = [c for c in comparisons if c.task == task and c.metric == metric]
    return row


# -- the store ------------------------------------------------------------------------------------------------------


def test_the_store_keeps_runs_with_environment_metrics_errors_and_baselines(tmp_path: Path) -> None:
    path = tmp_path / "bench" / "history.sqlite"
    first = run(
        ff(),
        TaskResult("mnist-pca", {"hidden_mse[2]": 0.05, "hidden_mse[5]": 0.04, "diverged": math.nan}, 1.25),
        TaskResult("mnist-vae", {}, 0.5, error="RuntimeError: out of memory"),
    )
    with HistoryStore(path) as store:
        stored = store.add(first)
    assert stored.id == 1
    assert [r.baseline for r in stored.results] == [True, True, False]  # the first success becomes the baseline
    with HistoryStore(path) as store:  # reopened: everything came back
        (again,) = store.runs()
        second = store.add(run(ff(accuracy=0.96), created="2026-12-02T10:00:00+00:00"))
        third = store.add(run(ff(accuracy=0.97), created="2026-12-03T10:00:00+00:00"), save_baseline=True)
        assert [r.id for r in store.runs("fast")] == [1, 2, 3] and store.runs("full") == []
    assert again.environment == HERE and again.created == first.created and again.profile == "fast"
    assert again.result("mnist-ff") == dataclasses.replace(ff(), baseline=True)
    pca = again.result("mnist-pca").metrics
    assert pca["hidden_mse[2]"] == 0.05 and list(pca) == ["hidden_mse[2]", "hidden_mse[5]", "diverged"]
    assert math.isnan(pca["diverged"])
    assert again.result("mnist-vae").error == "RuntimeError: out of memory" and not again.result("mnist-vae").baseline
    assert second.result("mnist-ff").baseline is False  # a baseline exists: only --save-baseline replaces it
    assert third.result("mnist-ff").baseline is True
    with sqlite3.connect(path) as db:  # staff can query the history with any SQLite client
        assert db.execute("SELECT value FROM metrics WHERE run_id = 2 AND task = 'mnist-ff'").fetchone() == (0.96,)
        assert "threads" in db.execute("SELECT fingerprint FROM runs WHERE id = 1").fetchone()[0]


def test_the_store_refuses_a_folder_and_another_programs_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder; the benchmark history is a file"):
        HistoryStore(tmp_path)
    other = tmp_path / "results.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE reports (x)")
    with pytest.raises(StoreError, match=r"results.sqlite: is an SQLite file but not a benchmark history \(tables: reports\)"):
        HistoryStore(other)


def test_calibration_records_become_scalar_metrics() -> None:
    record = {
        "metrics": {
            "test_accuracy": 0.9, "parameters": 12_810, "encoder_unchanged": True, "hidden_per_class_accuracy": [0.8, 0.9],
            "hidden_mse": {"2": 0.05, "20": 0.01}, "scratch_test_accuracy": 0.5,
        },
        "wall_seconds": 3.5,
    }
    assert measured_metrics(record) == {"test_accuracy": 0.9, "hidden_mse[2]": 0.05, "hidden_mse[20]": 0.01}
    made = run_from_calibration(
        {"profile": "fast", "created": "2026-12-01T10:00:00+00:00",
         "tasks": {"mnist-cnn": record, "mnist-vae": {"error": "ValueError: nan", "wall_seconds": 0.1}}},
        HERE,
    )
    assert made.result("mnist-cnn").wall_seconds == 3.5
    assert made.result("mnist-vae").error == "ValueError: nan"


# -- the comparison -------------------------------------------------------------------------------------------------


def test_an_unchanged_run_passes(tmp_path: Path) -> None:
    store, earlier = history_with_baseline(tmp_path)
    rows = compare(run(ff(), cnn()), earlier)
    assert not [r for r in rows if r.regressed]
    assert {(r.task, r.metric, r.verdict) for r in rows} == {
        ("mnist-ff", "test_accuracy", "ok"), ("mnist-ff", "wall_seconds", "ok"),
        ("mnist-cnn", "test_accuracy", "ok"), ("mnist-cnn", "test_loss", "ok"), ("mnist-cnn", "wall_seconds", "ok"),
    }  # test_kl is recorded but not judged
    assert by_metric(rows, "mnist-cnn", "test_accuracy").message == "mnist-cnn test_accuracy within 2 points (97.0% -> 97.0%)"
    store.close()


def test_a_reference_three_times_slower_is_a_regression(tmp_path: Path) -> None:
    store, earlier = history_with_baseline(tmp_path)
    rows = compare(run(ff(), cnn(wall=30.0)), earlier)
    assert [r.message for r in rows if r.regressed] == [
        "mnist-cnn wall time grew 200% (10.0 s -> 30.0 s on the same machine); at most 50% allowed"
    ]
    assert by_metric(rows, "mnist-cnn", "wall_seconds").baseline_run == 1
    assert not [r for r in compare(run(ff(), cnn(wall=30.0)), earlier, Tolerances(time_percent=250)) if r.regressed]
    store.close()


def test_a_reference_ten_points_less_accurate_is_a_regression(tmp_path: Path) -> None:
    store, earlier = history_with_baseline(tmp_path)
    rows = compare(run(ff(), cnn(accuracy=0.87)), earlier)
    assert [r.message for r in rows if r.regressed] == [
        "mnist-cnn test_accuracy fell 10.0 points (97.0% -> 87.0%); at most 2 points allowed"
    ]
    assert by_metric(rows, "mnist-cnn", "test_accuracy").verdict == "regression"
    assert by_metric(compare(run(ff(), cnn(accuracy=0.955)), earlier), "mnist-cnn", "test_accuracy").verdict == "ok"
    assert by_metric(compare(run(ff(), cnn(accuracy=0.99)), earlier), "mnist-cnn", "test_accuracy").verdict == "better"
    loose = Tolerances(accuracy_points=12)
    assert not [r for r in compare(run(ff(), cnn(accuracy=0.87)), earlier, loose) if r.regressed]
    store.close()


def test_a_loss_may_rise_ten_percent(tmp_path: Path) -> None:
    store, earlier = history_with_baseline(tmp_path)
    assert by_metric(compare(run(cnn(loss=0.109)), earlier), "mnist-cnn", "test_loss").verdict == "ok"
    rows = compare(run(cnn(loss=0.125)), earlier)
    assert [r.message for r in rows if r.regressed] == ["mnist-cnn test_loss rose 25% (0.1 -> 0.125); at most 10% allowed"]
    rows = compare(run(cnn(loss=math.nan)), earlier)
    assert [r.message for r in rows if r.regressed] == ["mnist-cnn test_loss is not a number (baseline 0.1): training diverged"]
    store.close()


def test_a_negative_loss_is_judged_by_its_size(tmp_path: Path) -> None:
    # the NLL of softmax outputs (the softmax-then-NLLLoss mistake the references reproduce) is below zero
    store, earlier = history_with_baseline(tmp_path, cnn(loss=-0.648))
    assert by_metric(compare(run(cnn(loss=-0.648)), earlier), "mnist-cnn", "test_loss").verdict == "ok"
    rows = compare(run(cnn(loss=-0.5)), earlier)
    assert [r.message for r in rows if r.regressed] == ["mnist-cnn test_loss rose 23% (-0.648 -> -0.5); at most 10% allowed"]
    assert by_metric(rows, "mnist-cnn", "test_loss").verdict == "regression"
    store.close()


def test_a_reference_that_fails_to_train_is_a_regression(tmp_path: Path) -> None:
    store, earlier = history_with_baseline(tmp_path)
    rows = compare(run(ff(), TaskResult("mnist-cnn", {}, 0.2, error="RuntimeError: boom")), earlier)
    assert [r.message for r in rows if r.regressed] == ["mnist-cnn: the reference could not be trained: RuntimeError: boom"]
    store.close()


def test_wall_times_are_compared_only_on_the_same_machine(tmp_path: Path) -> None:
    store, earlier = history_with_baseline(tmp_path)
    elsewhere = dataclasses.replace(HERE, threads=4, torch="2.5.0")
    rows = compare(run(ff(), cnn(wall=30.0), environment=elsewhere), earlier)
    assert not [r for r in rows if r.regressed]  # three times slower, but on another machine: not a verdict
    timing = by_metric(rows, "mnist-cnn", "wall_seconds")
    assert timing.verdict == "not compared"
    assert timing.message == (
        "mnist-cnn wall time not compared: the baseline (run #1) ran on another machine "
        "(torch 2.4.0 in the baseline, 2.5.0 now; threads 1 in the baseline, 4 now); "
        "--save-baseline makes this run the baseline"
    )
    assert timing_notes(rows) == [
        "wall time of mnist-ff, mnist-cnn not compared: the baseline (run #1) ran on another machine "
        "(torch 2.4.0 in the baseline, 2.5.0 now; threads 1 in the baseline, 4 now); "
        "--save-baseline makes this run the baseline"
    ]
    assert by_metric(rows, "mnist-cnn", "test_accuracy").verdict == "ok"  # quality is compared anywhere
    store.add(run(ff(), cnn(wall=30.0), environment=elsewhere), save_baseline=True)  # a baseline for that machine
    rows = compare(run(ff(), cnn(wall=31.0), environment=elsewhere), store.runs("fast"))
    assert by_metric(rows, "mnist-cnn", "wall_seconds").verdict == "ok"
    rows = compare(run(ff(), cnn(wall=30.0)), store.runs("fast"))  # back here: the first machine's baseline
    assert by_metric(rows, "mnist-cnn", "wall_seconds").message.startswith("mnist-cnn wall time grew 200% (10.0 s -> 30.0 s")
    store.close()


def test_wall_times_are_compared_only_after_the_same_tasks(tmp_path: Path) -> None:
    store, earlier = history_with_baseline(tmp_path)  # mnist-ff, then mnist-cnn (the data was loaded already)
    rows = compare(run(cnn(wall=14.0)), earlier)
    assert by_metric(rows, "mnist-cnn", "wall_seconds").message == (
        "mnist-cnn wall time not compared: the baseline on this machine (run #1) ran it after mnist-ff, this run first "
        "(a task's time includes loading the data and training the models it is the first to need); "
        "--save-baseline makes this run the baseline"
    )
    assert by_metric(compare(run(ff(wall=5.5)), earlier), "mnist-ff", "wall_seconds").verdict == "ok"  # first both times
    store.close()


def test_short_tasks_have_a_little_slack_and_new_tasks_start_a_baseline(tmp_path: Path) -> None:
    store, earlier = history_with_baseline(tmp_path, TaskResult("mnist-pca", {"hidden_mse[2]": 0.05}, 0.2))
    rows = compare(run(TaskResult("mnist-pca", {"hidden_mse[2]": 0.05}, 0.5)), earlier)
    assert by_metric(rows, "mnist-pca", "wall_seconds").verdict == "ok"  # +150%, but 0.3 s: timer noise
    rows = compare(run(TaskResult("mnist-pca", {"hidden_mse[2]": 0.05}, 0.5), cnn()), earlier)
    assert {r.verdict for r in rows if r.task == "mnist-cnn"} == {"new"}
    assert by_metric(rows, "mnist-cnn", "test_accuracy").message == "mnist-cnn test_accuracy has no baseline yet: this run's value becomes it"
    store.close()


def page_with_a_regression(tmp_path: Path, page: Path, calibration: str = "last-run.json") -> Path:
    """The history page after a baseline and a run whose CNN fell 10 points and ran 3x slower."""
    store, _ = history_with_baseline(tmp_path)
    current = run(ff(), cnn(accuracy=0.87, wall=30.0), created="2026-12-02T10:00:00+00:00")
    rows = compare(current, store.runs("fast"))
    current = store.add(current)
    written = render_history(store.runs("fast"), current, rows, page, calibration=calibration)
    store.close()
    return written


def test_the_page_shows_the_comparison_the_environment_and_a_plot_per_metric(tmp_path: Path) -> None:
    page = page_with_a_regression(tmp_path, tmp_path / "out" / "index.html")
    html = page.read_text(encoding="utf-8")
    assert "2 regressions against the baseline" in html
    assert "mnist-cnn test_accuracy fell 10.0 points (97.0% -&gt; 87.0%); at most 2 points allowed" in html
    assert "Example CPU 3000" in html and "0123456789ab" in html
    for plot in ("wall_seconds", "test_accuracy", "test_loss", "test_kl"):
        assert f'src="plots/{plot}.png"' in html
        assert (tmp_path / "out" / "plots" / f"{plot}.png").stat().st_size > 1000


# -- the command ----------------------------------------------------------------------------------------------------


def test_bench_with_an_unknown_task_names_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(  # the task list is checked before the data: nothing needs preparing
        app, ["bench", "--task", "mnist-gan", "--data", str(tmp_path / "data"), "--history", str(tmp_path / "h.sqlite"),
              "--out", str(tmp_path / "index.html")],
    )
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "unknown calibration task(s) mnist-gan; known: mnist-ff, mnist-ff-logits, mnist-cnn" in text
    assert not (tmp_path / "index.html").exists()


@pytest.mark.slow
def test_bench_records_twice_then_flags_a_degraded_trainer(tmp_path: Path, small_data: Path, monkeypatch) -> None:
    from reference import training

    runner = CliRunner()
    history, out = tmp_path / "history.sqlite", tmp_path / "page" / "index.html"
    # Wall time is loose here: the test machine is shared, and timing verdicts are tested above without training.
    command = ["bench", "--task", "mnist-ff", "--data", str(small_data), "--history", str(history), "--out", str(out),
               "--threads", "1", "--max-time-growth", "1000"]
    first = runner.invoke(app, command)
    assert first.exit_code == 0, first.output
    assert "run #1: the baseline of 1 task(s) from now on" in first.output
    second = runner.invoke(app, command)
    assert second.exit_code == 0, second.output
    text = " ".join(second.output.split())
    assert "benchmark run #2 (fast profile) against the baseline" in text
    assert "no regressions against the baseline" in text
    assert (out.parent / "last-run.json").is_file() and (out.parent / "plots" / "test_accuracy.png").is_file()

    original = training.train_classifier

    def barely_learning(*args, **kwargs):
        kwargs["lr"] = 1e-7  # a broken optimiser setting: the weights hardly move
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "train_classifier", barely_learning)
    third = runner.invoke(app, command)
    assert third.exit_code == 1, third.output
    text = " ".join(third.output.split())
    assert "regression: mnist-ff test_accuracy fell" in text
    assert "at most 2 points allowed" in text
    assert "regression(s) against the baseline" in text
    with HistoryStore(history) as store:
        runs = store.runs("fast")
    assert [r.id for r in runs] == [1, 2, 3]
    assert runs[0].result("mnist-ff").metrics == runs[1].result("mnist-ff").metrics  # seeded: the same figures
    assert "regression" in out.read_text(encoding="utf-8")
