"""Benchmark history: run the references, keep every run in SQLite, compare each run with the baseline.

Course staff track regressions across library versions and machines with ``gradebench bench``:
it trains the reference tasks with :func:`harness.calibrate.calibrate` (the same code and the
same figures as ``gradebench calibrate``), turns the result into a :class:`BenchRun` (every
scalar metric, the wall time, the environment it ran in), compares it with the baseline
(:func:`compare`), stores it (:class:`HistoryStore`) and draws the history (:func:`render_history`).

The baseline is kept per reference task: a task's first successful result becomes its baseline,
and ``--save-baseline`` makes every task of a run the new baseline. Quality metrics (accuracy,
loss) are compared with the latest baseline of the same profile wherever it ran; wall times
only with the latest baseline measured on the same machine (:attr:`Environment.fingerprint`),
since a time from another CPU, core count, torch version or thread count says nothing.

Comparison and storage are separate: :func:`compare` is pure, the store only stores.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from harness import __version__
from harness.errors import StoreError
from harness.sqlitefile import open_database

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout gradebench runs from: its git commit is recorded with every run."""

Kind = Literal["accuracy", "loss", "time", "other"]
Verdict = Literal["ok", "better", "regression", "failed", "new", "not compared"]

CONTEXT_COPIES = frozenset({"scratch_test_accuracy", "autoencoder_hidden_l1"})
"""Metrics a calibration task copies from another task for context (idl-finetune shows idl-100-labels'
accuracy): they are that other task's figures, compared there, so they are not recorded twice."""


# -- the environment ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """Where and with what a benchmark run was measured."""

    cpu_model: str
    """The CPU's model name, e.g. 'Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz'."""
    cpu_count: int
    """Logical CPU cores of the machine."""
    threads: int
    """Torch threads the references trained with."""
    torch: str
    """torch.__version__."""
    python: str
    """platform.python_version()."""
    gradebench: str
    """gradebench's version."""
    gpu: str | None = None
    """The GPU's name when torch sees one (the references train on the CPU either way)."""
    git_commit: str | None = None
    """The checkout's commit, with '-dirty' when tracked files have uncommitted changes; None outside git."""
    platform: str = ""
    """platform.platform(): operating system and architecture."""

    @property
    def fingerprint(self) -> str:
        """What must match for two wall times to be compared: CPU model, core count, torch version, threads."""
        return f"{self.cpu_model}, {self.cpu_count} cores, torch {self.torch}, {self.threads} threads"


def cpu_model() -> str:
    """The CPU's model name as the operating system reports it (platform.processor() as a last resort)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():  # x86, then ARM boards
                return value.strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            done = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5, check=False
            )
            if done.returncode == 0 and done.stdout.strip():
                return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


def gpu_name() -> str | None:
    """The name of the first GPU torch can use, or None."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "Apple MPS"
    return None


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """The commit checked out at ``root`` ('-dirty' appended when tracked files changed), or None."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return None
    changes = git("status", "--porcelain", "--untracked-files=no")
    return f"{commit}-dirty" if changes else commit


def describe_environment(threads: int) -> Environment:
    """The environment of this process, for a run that trains with ``threads`` torch threads."""
    import torch

    return Environment(
        cpu_model=cpu_model(),
        cpu_count=os.cpu_count() or 1,
        threads=int(threads),
        torch=torch.__version__,
        python=platform.python_version(),
        gradebench=__version__,
        gpu=gpu_name(),
        git_commit=git_commit(),
        platform=platform.platform(),
    )


# -- runs ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskResult:
    """One reference task in one benchmark run."""

    task: str
    """The calibration task id, e.g. 'mnist-cnn'."""
    metrics: Mapping[str, float]
    """Every scalar metric calibration recorded (a per-latent dict ``hidden_mse`` as ``hidden_mse[2]``...)."""
    wall_seconds: float
    """Wall-clock seconds of the whole task: data preparation, training and evaluation."""
    error: str | None = None
    """Why the reference could not be trained ('RuntimeError: ...'); None when it was."""
    baseline: bool = False
    """Whether this result is (or was) the task's baseline."""


@dataclass(frozen=True)
class BenchRun:
    """One `gradebench bench` run: what every chosen reference task reached, how long it took, and where."""

    created: str
    """UTC, ISO 8601."""
    profile: str
    """The calibration profile: 'fast' or 'full'."""
    environment: Environment
    results: tuple[TaskResult, ...]
    id: int | None = None
    """The run's number in the history store; None until it is stored."""

    def result(self, task: str) -> TaskResult | None:
        """This run's result for a task, or None when the run did not include it."""
        return next((r for r in self.results if r.task == task), None)


def measured_metrics(record: Mapping) -> dict[str, float]:
    """The scalar measurements in a calibration task's record, by name.

    Floats are measurements; integers and booleans are settings or counts (parameters,
    latent_dim, encoder_unchanged) and lists are per-class or per-epoch detail, all left out.
    A dict of floats (the autoencoder sweep's error per latent size) gives one metric per key.
    """
    metrics: dict[str, float] = {}
    for name, value in record.get("metrics", {}).items():
        if name in CONTEXT_COPIES:
            continue
        if isinstance(value, float):
            metrics[name] = value
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                if isinstance(inner, float):
                    metrics[f"{name}[{key}]"] = inner
    return metrics


def run_from_calibration(result: Mapping, environment: Environment) -> BenchRun:
    """The benchmark run a :func:`harness.calibrate.calibrate` result describes."""
    results = tuple(
        TaskResult(
            task=task,
            metrics=measured_metrics(record),
            wall_seconds=float(record.get("wall_seconds", 0.0)),
            error=record.get("error"),
        )
        for task, record in result["tasks"].items()
    )
    created = result.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds")
    return BenchRun(created=created, profile=result["profile"], environment=environment, results=results)


def run_references(
    data_dir: Path,
    *,
    profile: str = "fast",
    tasks: list[str] | None = None,
    threads: int | None = None,
    calibration_out: Path | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> BenchRun:
    """Train the reference tasks (all, or ``tasks``) as ``gradebench calibrate`` does; the run it makes.

    The calibration JSON (with curves and settings) is written to ``calibration_out``, not to the
    calibration folder, so that a benchmark of one task never replaces a full calibration.
    """
    from harness import calibrate
    from reference import training

    n_threads = training.default_threads() if threads is None else int(threads)
    result = calibrate.calibrate(
        data_dir, profile=profile, out=calibration_out, threads=n_threads, tasks=tasks, on_progress=on_progress
    )
    return run_from_calibration(result, describe_environment(n_threads))


# -- comparison ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerances:
    """How far a run may fall behind its baseline before it is a regression."""

    accuracy_points: float = 2.0
    """Accuracy may drop at most this many percentage points (absolute)."""
    loss_percent: float = 10.0
    """A loss or reconstruction error may rise at most this many percent (relative)."""
    time_percent: float = 50.0
    """Wall time may grow at most this many percent (relative), compared on the same machine only."""
    time_slack_s: float = 0.5
    """Wall-time growth below this many seconds is never a regression: timer noise on tasks that take a moment."""


@dataclass(frozen=True)
class Comparison:
    """One metric of one task, now against its baseline."""

    task: str
    metric: str
    """The metric's name ('test_accuracy', 'hidden_mse[2]', 'wall_seconds')."""
    kind: Kind
    """How it is judged: 'accuracy' (points), 'loss' (relative rise), 'time' (relative growth)."""
    now: float | None
    """This run's value; None when the task failed."""
    baseline: float | None
    """The baseline's value; None when there is none to compare with."""
    baseline_run: int | None
    """The history run the baseline value comes from."""
    verdict: Verdict
    message: str
    """One sentence for the person who reads the table: what changed and by how much against what is allowed."""

    @property
    def regressed(self) -> bool:
        """Whether this comparison fails the run (a regression, or a reference that could not be trained)."""
        return self.verdict in ("regression", "failed")


def metric_kind(name: str) -> Kind:
    """How a metric is judged, from its name: accuracies up, losses and reconstruction errors down."""
    base = name.split("[", 1)[0]
    if base == "wall_seconds":
        return "time"
    if "accuracy" in base:
        return "accuracy"
    if base.endswith(("loss", "mse", "l1", "bce")):
        return "loss"
    return "other"


def _baseline(task: str, earlier: Sequence[BenchRun], profile: str) -> tuple[BenchRun | None, TaskResult | None]:
    """The latest successful baseline result of a task among earlier runs of a profile, and its run."""
    for run in reversed(earlier):
        result = run.result(task)
        if run.profile == profile and result is not None and result.baseline and result.error is None:
            return run, result
    return None, None


def _judge(task: str, metric: str, kind: Kind, now: float, base: float, tol: Tolerances) -> tuple[Verdict, str]:
    """The verdict and message for a value against its baseline value."""
    label = f"{task} {metric}"
    if math.isnan(now):
        return "regression", f"{label} is not a number (baseline {base:.4g}): training diverged"
    if kind == "accuracy":
        change = 100 * (now - base)  # percentage points
        text = f"{100 * base:.1f}% -> {100 * now:.1f}%"
        if -change > tol.accuracy_points:
            return "regression", f"{label} fell {-change:.1f} points ({text}); at most {tol.accuracy_points:g} points allowed"
        if change > tol.accuracy_points:
            return "better", f"{label} rose {change:.1f} points ({text})"
        return "ok", f"{label} within {tol.accuracy_points:g} points ({text})"
    if kind == "loss":
        # relative to the baseline's size: the NLL of softmax outputs (mnist-softmax-nll-mistake) is negative
        limit, allowed = tol.loss_percent, abs(base) * tol.loss_percent / 100
        text = f"{base:.4g} -> {now:.4g}"
        if now - base > allowed:
            rise = f"{100 * (now - base) / abs(base):.0f}%" if base else "from 0"
            return "regression", f"{label} rose {rise} ({text}); at most {limit:g}% allowed"
        if base - now > allowed:
            return "better", f"{label} fell {100 * (base - now) / abs(base):.0f}% ({text})"
        return "ok", f"{label} within {limit:g}% ({text})"
    limit = tol.time_percent
    text = f"{base:.1f} s -> {now:.1f} s on the same machine"
    if now > base * (1 + limit / 100) and now - base >= tol.time_slack_s:
        return "regression", f"{task} wall time grew {100 * (now / base - 1):.0f}% ({text}); at most {limit:g}% allowed"
    if now < base / (1 + limit / 100) and base - now >= tol.time_slack_s:
        return "better", f"{task} wall time fell {100 * (1 - now / base):.0f}% ({text})"
    return "ok", f"{task} wall time within {limit:g}% ({text})"


def compare(run: BenchRun, earlier: Sequence[BenchRun], tolerances: Tolerances = Tolerances()) -> list[Comparison]:
    """Compare every accuracy, loss and wall time of ``run`` with the baselines among ``earlier`` runs.

    ``earlier`` are the stored runs before this one, oldest first. Metrics of kind 'other'
    (KL terms, principal angles, the over-fitting gap) are recorded but not judged.
    """
    rows: list[Comparison] = []
    for result in run.results:
        task = result.task
        base_run, base = _baseline(task, earlier, run.profile)
        if result.error is not None:
            message = f"{task}: the reference could not be trained: {result.error}"
            rows.append(Comparison(task, "training", "other", None, None, base_run and base_run.id, "failed", message))
            continue
        for metric, now in result.metrics.items():
            kind = metric_kind(metric)
            if kind == "other":
                continue
            old = base.metrics.get(metric) if base is not None else None
            if old is None:
                message = f"{task} {metric} has no baseline yet: this run's value becomes it"
                rows.append(Comparison(task, metric, kind, now, None, None, "new", message))
                continue
            verdict, message = _judge(task, metric, kind, now, old, tolerances)
            rows.append(Comparison(task, metric, kind, now, old, base_run.id, verdict, message))
        rows.append(_compare_time(run, result, earlier, tolerances))
    return rows


def _preceding(run: BenchRun, task: str) -> tuple[str, ...]:
    """The tasks a run trained before ``task``: a task's wall time includes loading the data and training
    the shared models (idl-finetune needs idl-conv-autoencoder's) that it is the first to need."""
    tasks = [r.task for r in run.results]
    return tuple(tasks[: tasks.index(task)]) if task in tasks else ()


def _machine_differences(baseline: Environment, now: Environment) -> str:
    """What differs between two machines' fingerprints, e.g. 'threads 1 in the baseline, 2 now'."""
    parts = [
        f"{label} {old} in the baseline, {new} now"
        for label, old, new in (
            ("CPU", baseline.cpu_model, now.cpu_model), ("cores", baseline.cpu_count, now.cpu_count),
            ("torch", baseline.torch, now.torch), ("threads", baseline.threads, now.threads),
        )
        if old != new
    ]
    return "; ".join(parts)


def _compare_time(run: BenchRun, result: TaskResult, earlier: Sequence[BenchRun], tol: Tolerances) -> Comparison:
    """Compare a task's wall time with the latest baseline measured on the same machine after the same tasks."""
    task, fingerprint, before = result.task, run.environment.fingerprint, _preceding(run, result.task)
    candidates = []  # (run, result) of every successful baseline of this task and profile, latest first
    for earlier_run in reversed(earlier):
        found = earlier_run.result(task)
        if earlier_run.profile == run.profile and found is not None and found.baseline and found.error is None:
            candidates.append((earlier_run, found))
    for base_run, base in candidates:
        if base_run.environment.fingerprint == fingerprint and _preceding(base_run, task) == before:
            verdict, message = _judge(task, "wall_seconds", "time", result.wall_seconds, base.wall_seconds, tol)
            return Comparison(task, "wall_seconds", "time", result.wall_seconds, base.wall_seconds, base_run.id, verdict, message)
    if not candidates:
        message = f"{task} wall time has no baseline yet: this run's becomes it"
        return Comparison(task, "wall_seconds", "time", result.wall_seconds, None, None, "new", message)
    same_machine = [(r, b) for r, b in candidates if r.environment.fingerprint == fingerprint]
    if same_machine:
        base_run, base = same_machine[0]
        reason = (
            f"the baseline on this machine (run #{base_run.id}) ran it {_order(_preceding(base_run, task))}, "
            f"this run {_order(before)} (a task's time includes loading the data and training the models it is "
            "the first to need)"
        )
    else:
        base_run, base = candidates[0]
        reason = (
            f"the baseline (run #{base_run.id}) ran on another machine "
            f"({_machine_differences(base_run.environment, run.environment)})"
        )
    message = f"{task} wall time not compared: {reason}; --save-baseline makes this run the baseline"
    return Comparison(task, "wall_seconds", "time", result.wall_seconds, base.wall_seconds, base_run.id, "not compared", message)


def _order(tasks: Sequence[str]) -> str:
    """Where a task ran in a run: 'first', 'after mnist-ff', 'after mnist-ff and mnist-cnn', 'after 5 other tasks'."""
    if not tasks:
        return "first"
    if len(tasks) <= 3:
        return "after " + (" and ".join([", ".join(tasks[:-1]), tasks[-1]]) if len(tasks) > 1 else tasks[0])
    return f"after {len(tasks)} other tasks"


def timing_notes(comparisons: Sequence[Comparison]) -> list[str]:
    """One line per reason wall times were not compared, naming the tasks it applies to."""
    marker = " wall time not compared: "
    by_reason: dict[str, list[str]] = {}
    for row in comparisons:
        if row.verdict == "not compared":
            by_reason.setdefault(row.message.partition(marker)[2], []).append(row.task)
    return [f"wall time of {', '.join(tasks)} not compared: {reason}" for reason, tasks in by_reason.items()]


# -- the history store --------------------------------------------------------------------------------------------

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created     TEXT NOT NULL,  -- UTC, ISO 8601
    profile     TEXT NOT NULL,  -- calibration profile: fast or full
    fingerprint TEXT NOT NULL,  -- CPU model, cores, torch, threads: wall times compare only within one
    environment TEXT NOT NULL   -- the Environment as JSON
);
CREATE TABLE IF NOT EXISTS results (
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    task         TEXT NOT NULL,
    wall_seconds REAL NOT NULL,
    error        TEXT,                       -- NULL when the reference trained
    baseline     INTEGER NOT NULL DEFAULT 0, -- 1: this is (or was) the task's baseline
    PRIMARY KEY (run_id, task)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL,
    task   TEXT NOT NULL,
    name   TEXT NOT NULL,
    value  REAL,                             -- NULL for NaN (SQLite has no NaN)
    PRIMARY KEY (run_id, task, name),
    FOREIGN KEY (run_id, task) REFERENCES results (run_id, task)
);
"""
_TABLES = {"runs", "results", "metrics"}


class HistoryStore:
    """Every benchmark run in one SQLite file, oldest first; query it with any SQLite client."""

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the history at ``path``; StoreError if it is not a benchmark history."""
        self.path = Path(path)
        self._conn = open_database(
            self.path,
            what="benchmark history",
            example="history.sqlite",
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            timeout_s=BUSY_TIMEOUT_S,
            before_schema=self._check_tables,
        )

    def _check_tables(self, conn: sqlite3.Connection) -> None:
        """StoreError when the file is an SQLite file of some other kind (tables, none of them a history's)."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        tables.discard("sqlite_sequence")
        if tables and not tables & _TABLES:
            raise StoreError(
                f"{self.path}: is an SQLite file but not a benchmark history (tables: {', '.join(sorted(tables))})"
            )

    def add(self, run: BenchRun, *, save_baseline: bool = False) -> BenchRun:
        """Store a run; the stored run (with its id and baseline marks) is returned.

        A task's successful result is marked as its baseline when ``save_baseline`` is set or
        when the task has no baseline in this profile yet. A failed task is never a baseline.
        """
        try:
            cursor = self._conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                has_baseline = {
                    task for (task,) in cursor.execute(
                        """SELECT DISTINCT r.task FROM results r JOIN runs ON runs.id = r.run_id
                           WHERE runs.profile = ? AND r.baseline = 1 AND r.error IS NULL""",
                        (run.profile,),
                    )
                }
                cursor.execute(
                    "INSERT INTO runs (created, profile, fingerprint, environment) VALUES (?, ?, ?, ?)",
                    (run.created, run.profile, run.environment.fingerprint,
                     json.dumps(dataclasses.asdict(run.environment), ensure_ascii=False)),
                )
                run_id = cursor.lastrowid
                stored = []
                for result in run.results:
                    baseline = result.error is None and (save_baseline or result.task not in has_baseline)
                    cursor.execute(
                        "INSERT INTO results (run_id, task, wall_seconds, error, baseline) VALUES (?, ?, ?, ?, ?)",
                        (run_id, result.task, result.wall_seconds, result.error, int(baseline)),
                    )
                    cursor.executemany(
                        "INSERT INTO metrics (run_id, task, name, value) VALUES (?, ?, ?, ?)",
                        [(run_id, result.task, name, None if math.isnan(v) else v) for name, v in result.metrics.items()],
                    )
                    stored.append(dataclasses.replace(result, baseline=baseline))
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot write the benchmark run ({e})") from None
        return dataclasses.replace(run, id=run_id, results=tuple(stored))

    def runs(self, profile: str | None = None) -> list[BenchRun]:
        """Every stored run (of one profile when given), oldest first."""
        query = "SELECT id, created, profile, environment FROM runs"
        args: tuple[str, ...] = ()
        if profile is not None:
            query += " WHERE profile = ?"
            args = (profile,)
        try:
            heads = self._conn.execute(query + " ORDER BY id", args).fetchall()
            results: dict[int, list[tuple]] = {}
            for row in self._conn.execute("SELECT run_id, task, wall_seconds, error, baseline FROM results ORDER BY rowid"):
                results.setdefault(row[0], []).append(row[1:])
            metrics: dict[tuple[int, str], dict[str, float]] = {}
            for run_id, task, name, value in self._conn.execute("SELECT run_id, task, name, value FROM metrics ORDER BY rowid"):
                metrics.setdefault((run_id, task), {})[name] = math.nan if value is None else value
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot read the benchmark history ({e})") from None
        runs = []
        for run_id, created, run_profile, environment in heads:
            tasks = tuple(
                TaskResult(task, metrics.get((run_id, task), {}), wall, error, bool(baseline))
                for task, wall, error, baseline in results.get(run_id, [])
            )
            runs.append(BenchRun(created, run_profile, self._environment(run_id, environment), tasks, run_id))
        return runs

    def _environment(self, run_id: int, text: str) -> Environment:
        """Decode a stored environment (fields a later gradebench added are ignored); StoreError if damaged."""
        try:
            data = json.loads(text)
            known = {f.name for f in dataclasses.fields(Environment)}
            return Environment(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError) as e:
            raise StoreError(f"{self.path}: the environment of run #{run_id} is damaged ({e})") from None

    def close(self) -> None:
        """Close the file; closing twice is harmless."""
        self._conn.close()

    def __enter__(self) -> HistoryStore:
        """Use the store in a ``with`` block; it closes at the end."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the store."""
        self.close()


# -- the history page ---------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    """A file name for a metric."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "metric"


_KIND_ORDER = {"time": 0, "accuracy": 1, "loss": 2, "other": 3}


def _series(runs: Sequence[BenchRun]) -> dict[str, dict[str, list[tuple[int, float, bool]]]]:
    """Per plotted metric (the name before any '[key]'), per line label: (run id, value, baseline) points."""
    series: dict[str, dict[str, list[tuple[int, float, bool]]]] = {}
    for run in runs:
        for result in run.results:
            if result.error is not None:
                continue
            for name, value in result.metrics.items():
                base, _, key = name.partition("[")
                label = f"{result.task} [{key}" if key else result.task
                series.setdefault(base, {}).setdefault(label, []).append((run.id, value, result.baseline))
    return series


def _natural(text: str) -> list[object]:
    """A sort key that puts 'mnist-pca [2]' before 'mnist-pca [10]'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _plot(title: str, lines: Mapping[str, list[tuple[int, float, bool]]], kind: Kind, path: Path) -> None:
    """Draw one metric over the runs, one line per task, baselines ringed; write a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    colours = plt.get_cmap("tab10").colors
    styles = ("-", "--", ":")  # beyond ten lines the colours repeat with another line style
    values = []
    for i, (label, points) in enumerate(sorted(lines.items(), key=lambda item: _natural(item[0]))):
        xs = [p[0] for p in points]
        ys = [100 * p[1] if kind == "accuracy" else p[1] for p in points]
        values.extend(y for y in ys if math.isfinite(y))
        colour, style = colours[i % len(colours)], styles[(i // len(colours)) % len(styles)]
        ax.plot(xs, ys, style, marker="o", markersize=3.5, linewidth=1.4, color=colour, label=label)
        base = [(x, y) for (x, y), p in zip(zip(xs, ys), points) if p[2]]
        if base:
            ax.scatter(*zip(*base), s=70, facecolors="none", edgecolors=colour, linewidths=1.2)
    positive = [v for v in values if v > 0]
    if kind != "accuracy" and positive and len(positive) == len(values) and max(positive) / min(positive) > 5:
        ax.set_yscale("log")  # tasks on very different scales (a VAE's loss per image beside a per-pixel error)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("run (ringed: a baseline)")
    ax.set_ylabel({"accuracy": "%", "time": "seconds"}.get(kind, ""))
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _format(kind: Kind, value: float | None) -> str:
    """A value as the table shows it: accuracy in %, time in seconds, the rest to 4 significant digits."""
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if kind == "accuracy":
        return f"{100 * value:.1f}%"
    if kind == "time":
        return f"{value:.1f} s"
    return f"{value:.4g}"


def format_change(row: Comparison) -> str:
    """The change from the baseline: points for an accuracy, percent for a loss or a time; '' without a baseline."""
    if row.now is None or row.baseline is None or math.isnan(row.now) or row.verdict == "not compared":
        return ""
    if row.kind == "accuracy":
        return f"{round(100 * (row.now - row.baseline), 1) + 0.0:+.1f} pt"  # + 0.0: no '-0.0'
    if row.baseline == 0:
        return ""
    return f"{round(100 * (row.now - row.baseline) / abs(row.baseline)) + 0.0:+.0f}%"


def table_rows(comparisons: Sequence[Comparison]) -> list[dict[str, str]]:
    """The comparison as table rows of text: task, metric, baseline, now, change, verdict, message."""
    return [
        {
            "task": row.task, "metric": row.metric, "baseline": _format(row.kind, row.baseline),
            "now": _format(row.kind, row.now), "change": format_change(row), "verdict": row.verdict,
            "message": row.message,
        }
        for row in comparisons
    ]


def render_history(
    runs: Sequence[BenchRun], current: BenchRun, comparisons: Sequence[Comparison], out: Path,
    *, calibration: str | None = None,
) -> Path:
    """Write the history page ``out`` and its plots (``plots/*.png`` beside it); returns the page.

    ``runs`` are the stored runs of ``current``'s profile, ``current`` included. Wall times are
    plotted for the runs on ``current``'s machine only; every other metric for all of them.
    """
    from harness.reporting import _environment, _write_atomic

    out = Path(out)
    plots_dir = out.parent / "plots"
    fingerprint = current.environment.fingerprint
    here = [r for r in runs if r.environment.fingerprint == fingerprint]
    plots = []
    timing = _series_of_time(here)
    if timing:
        name = "wall_seconds"
        _plot("wall time per task, this machine", timing, "time", plots_dir / f"{name}.png")
        plots.append({"file": f"plots/{name}.png", "metric": "wall time"})
    series = _series(runs)
    for metric in sorted(series, key=lambda m: (_KIND_ORDER[metric_kind(m)], m)):
        kind = metric_kind(metric)
        _plot(metric + ("" if kind != "other" else " (recorded, not judged)"), series[metric], kind,
              plots_dir / f"{_slug(metric)}.png")
        plots.append({"file": f"plots/{_slug(metric)}.png", "metric": metric})
    regressions = [row.message for row in comparisons if row.regressed]
    html = _environment().get_template("bench.html.j2").render(
        current=current,
        environment=dataclasses.asdict(current.environment),
        fingerprint=fingerprint,
        rows=table_rows(comparisons),
        regressions=regressions,
        runs=[_run_row(run, fingerprint) for run in reversed(runs)],
        plots=plots,
        calibration=calibration,
        version=__version__,
        profile=current.profile,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    _write_atomic(out, html)
    return out


def _series_of_time(runs: Sequence[BenchRun]) -> dict[str, list[tuple[int, float, bool]]]:
    """Per task: (run id, wall seconds, baseline) over the runs it trained in."""
    lines: dict[str, list[tuple[int, float, bool]]] = {}
    for run in runs:
        for result in run.results:
            if result.error is None:
                lines.setdefault(result.task, []).append((run.id, result.wall_seconds, result.baseline))
    return lines


def _run_row(run: BenchRun, fingerprint: str) -> dict[str, object]:
    """One line of the page's run list."""
    env = run.environment
    return {
        "id": run.id,
        "created": run.created.replace("T", " ").replace("+00:00", " UTC"),
        "commit": env.git_commit or "",
        "torch": env.torch,
        "python": env.python,
        "machine": f"{env.cpu_model}, {env.cpu_count} cores, {env.threads} threads" + (f", {env.gpu}" if env.gpu else ""),
        "same_machine": env.fingerprint == fingerprint,
        "tasks": len(run.results),
        "baselines": sum(r.baseline for r in run.results),
        "failed": [r.task for r in run.results if r.error is not None],
    }
