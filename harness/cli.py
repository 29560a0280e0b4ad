"""The `gradebench` command line: `grade`, `check`, `overview`, `export`, `autograde`, `checks`, `bench`,
`calibrate`, `bundle make`, `data prepare`, `data info`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.errors import HarnessError

app = typer.Typer(
    help="gradebench: grade deep-learning assignments against reference implementations.",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Prepare and inspect the datasets the assignments read.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)


def default_data_dir() -> Path:
    """Where datasets live unless --data says otherwise: $GRADEBENCH_DATA or ~/.cache/gradebench/data."""
    env = os.environ.get("GRADEBENCH_DATA")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "gradebench" / "data"


DataOption = typer.Option(
    None, "--data", help="Data folder (default: $GRADEBENCH_DATA or ~/.cache/gradebench/data)."
)


def _fail(error: Exception) -> None:
    # not wrapped (a path broken over two lines cannot be copied) and not read as markup (``[1, 2]`` in a message)
    err_console.print(Text.assemble(("error:", "bold red"), " ", str(error)), soft_wrap=True, highlight=False)
    raise typer.Exit(code=2)


@data_app.command("prepare")
def data_prepare(
    data: Optional[Path] = DataOption,
    from_dir: Optional[Path] = typer.Option(
        None, "--from", help="Folder with real files (MNIST/, FashionMNIST/ in torchvision layout, sign_data/*.npy)."
    ),
    source: str = typer.Option(
        "auto", help="auto (files from --from, else download, else synthetic), files, download or synthetic."
    ),
    dataset: Optional[list[str]] = typer.Option(
        None, "--dataset", "-d", help="Only this dataset (repeatable): mnist, fashionmnist, signs."
    ),
    seed: int = typer.Option(0, help="Seed of the synthetic public splits: same seed, same bytes."),
    hidden_seed: Optional[int] = typer.Option(
        None, help="Seed of the hidden evaluation splits (default: the one kept in <data>/hidden/seed, else a new secret one)."
    ),
    small: bool = typer.Option(False, help="Small synthetic sets (6,000 / 1,000 images) for quick checks."),
) -> None:
    """Write MNIST, FashionMNIST and SIGNS where the assignments' code finds them, plus hidden evaluation splits."""
    from harness.data import DATASETS, prepare

    data_dir = data or default_data_dir()
    chosen = tuple(dataset) if dataset else DATASETS
    unknown = sorted(set(chosen) - set(DATASETS))
    if unknown:
        _fail(HarnessError(f"unknown dataset {', '.join(unknown)}; known: {', '.join(DATASETS)}"))
    started = time.perf_counter()
    try:
        manifest = prepare(
            data_dir,
            datasets=chosen,
            source=source,
            from_dir=from_dir,
            seed=seed,
            hidden_seed=hidden_seed,
            small=small,
            on_progress=lambda line: console.print(f"  {line}"),
        )
    except HarnessError as error:
        _fail(error)
    elapsed = time.perf_counter() - started
    _print_manifest(manifest, data_dir)
    console.print(f"prepared {len(chosen)} dataset(s) in {elapsed:.1f} s under {data_dir}")


@data_app.command("info")
def data_info(data: Optional[Path] = DataOption) -> None:
    """Show what is prepared in the data folder and where it came from."""
    from harness.data import read_manifest

    data_dir = data or default_data_dir()
    try:
        manifest = read_manifest(data_dir)
    except HarnessError as error:
        _fail(error)
    _print_manifest(manifest, data_dir)


def _print_manifest(manifest: dict[str, Any], data_dir: Path) -> None:
    table = Table(title=f"datasets in {data_dir}")
    table.add_column("dataset")
    table.add_column("source")
    table.add_column("splits")
    for name, entry in manifest.get("datasets", {}).items():
        counts = entry.get("counts", {})
        splits = ", ".join(f"{split} {count:,}" for split, count in counts.items())
        table.add_row(name, str(entry.get("source", "?")), splits)
    console.print(table)


@app.command()
def calibrate(
    data: Optional[Path] = DataOption,
    profile: str = typer.Option("full", help="full (all prepared data) or fast (subsets, few epochs)."),
    out: Optional[Path] = typer.Option(None, help="Where to write the JSON (default <data>/calibration/<profile>.json)."),
    seed: int = typer.Option(0, help="Training seed."),
    threads: Optional[int] = typer.Option(None, help="Torch threads (default: all cores)."),
) -> None:
    """Train every reference on the prepared data; record metrics and wall times for rubrics to read."""
    from harness.calibrate import calibrate as run_calibration

    data_dir = data or default_data_dir()
    started = time.perf_counter()
    try:
        result = run_calibration(
            data_dir,
            profile=profile,
            out=out,
            seed=seed,
            threads=threads,
            on_progress=lambda line: console.print(f"  {line}"),
        )
    except HarnessError as error:
        _fail(error)
    elapsed = time.perf_counter() - started
    console.print(metrics_table(result))
    failed = [task for task, entry in result["tasks"].items() if "error" in entry]
    console.print(f"calibrated {len(result['tasks'])} reference tasks in {elapsed:.0f} s ({profile} profile)")
    if failed:
        err_console.print(f"[bold red]{len(failed)} task(s) failed:[/] {', '.join(failed)}")
        raise typer.Exit(code=1)


def metrics_table(result: dict[str, Any]) -> Table:
    """A table of every task's scalar metrics (lists and curves are in the JSON)."""
    table = Table(title=f"reference metrics ({result.get('profile', '?')} profile)")
    table.add_column("task")
    table.add_column("metrics")
    table.add_column("train s", justify="right")
    for task, entry in result["tasks"].items():
        if "error" in entry:
            table.add_row(task, f"[red]error: {entry['error']}[/]", "")
            continue
        table.add_row(task, _format_metrics(entry.get("metrics", {})), f"{entry.get('train_seconds', 0):.1f}")
    return table


def _format_metrics(metrics: dict[str, Any]) -> str:
    parts = []
    for key, value in metrics.items():
        if isinstance(value, bool):
            parts.append(f"{key}={value}")
        elif isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif isinstance(value, int):
            parts.append(f"{key}={value:,}")
        elif isinstance(value, dict) and value and all(isinstance(v, (int, float)) for v in value.values()):
            parts.append(f"{key}: " + " ".join(f"{k}:{v:.3g}" for k, v in value.items()))
    return "\n".join(parts)


REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout gradebench runs from: its rubrics/ and submissions/ folders are the defaults."""


def _reference_dir(rubric_path: Path, assignment: str, given: Optional[Path]) -> Optional[Path]:
    """The reference submission used for calibration: --reference, else submissions/<assignment>/reference."""
    if given is not None:
        return given
    for root in (rubric_path.resolve().parent.parent, REPO_ROOT):
        candidate = root / "submissions" / assignment / "reference"
        if candidate.is_dir():
            return candidate
    return None


def _sandbox(kind: str):
    from harness.sandbox import make_sandbox

    sandbox = make_sandbox(kind)
    if not sandbox.isolated:
        err_console.print(
            "[bold yellow]warning:[/] bubblewrap is not available: student code runs WITHOUT isolation "
            "(no network or filesystem protection; only time and memory are limited)"
        )
    return sandbox


MemoryOption = typer.Option(
    None, "--memory", help="Memory limit of each sandboxed run, e.g. 8GiB (default: the rubric's limits, else 4GiB)."
)
CellTimeoutOption = typer.Option(
    None, "--cell-timeout", min=1, help="Seconds one notebook cell may run; the rest still runs (default: the rubric's, "
    "else the run's whole time limit).",
)


def _memory_bytes(text: Optional[str]) -> Optional[int]:
    """``--memory`` as bytes; a clear usage error for anything that is not a size."""
    if text is None:
        return None
    from pydantic import ByteSize, TypeAdapter, ValidationError

    try:
        size = int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        raise typer.BadParameter(f"{text!r} is not a size; write it like 8GiB, 512MiB or 2000000000", param_hint="--memory")
    if size < 64 * 1024**2:
        raise typer.BadParameter(f"{text} is too little for PyTorch to start; give at least 64MiB", param_hint="--memory")
    return size


@app.command()
def grade(
    submissions: Path = typer.Argument(..., help="A folder of submissions, an LMS bulk-download zip, or one submission."),
    rubric: Path = typer.Option(..., "--rubric", "-r", help="The assignment's rubric (rubrics/*.yaml)."),
    out: Path = typer.Option(Path("out"), "--out", "-o", help="Where reports, the gradebook and the results store go."),
    data: Optional[Path] = DataOption,
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", min=1,
        help="Submissions graded at once (default: one per CPU core here, divided by --threads, fewer when the free "
             "memory does not hold that many runs at their memory limit).",
    ),
    profile: str = typer.Option("full", help="full, or fast (fewer evaluation images, shorter limits)."),
    force: bool = typer.Option(False, help="Regrade submissions already in the results store."),
    manual: Optional[Path] = typer.Option(None, help="CSV of TA scores for written answers (a template is written to OUT)."),
    pins: Optional[Path] = typer.Option(
        None, help="YAML of files a TA chose per student and task (`student: {task-id: path}`), over the automatic choice."
    ),
    reference: Optional[Path] = typer.Option(None, help="Reference submission to calibrate thresholds and budgets with."),
    sandbox: str = typer.Option("auto", help="auto, bubblewrap or plain (no isolation)."),
    threads: int = typer.Option(1, help="Torch threads per sandboxed run."),
    memory: Optional[str] = MemoryOption,
    cell_timeout: Optional[float] = CellTimeoutOption,
    backend: str = typer.Option(
        "threads", help="Where submissions are graded: threads (this process), processes (worker processes) or ray."
    ),
    ray_address: Optional[str] = typer.Option(
        None, help="With --backend ray: the cluster to use (HOST:6379 of `ray start --head`); default: a local instance."
    ),
    jobs_per_gpu: int = typer.Option(1, min=1, help="GPU jobs that may share one GPU (rubrics with GPU tasks)."),
) -> None:
    """Grade a batch of submissions and write per-student reports, an index page and a gradebook CSV."""
    from harness.outdir import claim_output

    data_dir = data or default_data_dir()
    try:
        with claim_output(out):
            summary = _grade_with_progress(
                submissions, rubric, out, data_dir, jobs=jobs, profile=profile, force=force, manual=manual,
                reference=reference, sandbox=_sandbox(sandbox), threads=threads, pins=pins,
                memory_bytes=_memory_bytes(memory), cell_timeout_s=cell_timeout,
                backend=backend, ray_address=ray_address, jobs_per_gpu=jobs_per_gpu,
            )
    except HarnessError as error:
        _fail(error)
    except OSError as error:  # the output folder or a file in it could not be written
        _fail(HarnessError(_os_message(error)))
    console.print(
        f"graded {summary.graded}, unchanged {summary.reused}, could not load {summary.failed_to_load}"
        + (f", kept {len(summary.carried)} graded earlier" if summary.carried else "") + " "
        f"in {summary.seconds:.0f} s; index: {summary.index}"
    )
    held = [r for r in summary.reports if r.held_points]
    if held:
        csv_file = out / "manual-scores.csv"
        err_console.print(
            f"[yellow]note:[/] {len(held)} student(s) have {sum(r.held_points for r in held):g} points held for a TA's "
            "review (predictions the grader could not confirm by running the model again); they count 0 until a TA "
            f"writes release or reject in the review columns of {csv_file} and grades again with --manual {csv_file}",
            soft_wrap=True, highlight=False,
        )
    if summary.faults:
        err_console.print(f"{len(summary.faults)} grader fault(s); run the same command again to retry them")
        raise typer.Exit(code=1)


def _os_message(error: OSError) -> str:
    """An operating-system error as one sentence naming the file, for the person who ran the command."""
    where = f" {error.filename}" if error.filename else ""
    return f"could not write{where}: {error.strerror or error}"


def _grade_with_progress(
    submissions: Path,
    rubric: Path,
    out: Path,
    data_dir: Path,
    *,
    jobs: Optional[int],
    profile: str,
    force: bool,
    manual: Optional[Path],
    reference: Optional[Path],
    sandbox: Any,
    threads: int,
    memory_bytes: Optional[int] = None,
    cell_timeout_s: Optional[float] = None,
    backend: str = "threads",
    ray_address: Optional[str] = None,
    jobs_per_gpu: int = 1,
    pins: Optional[Path] = None,
):
    """Prepare the grading setup and grade the batch with a progress bar; the BatchSummary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.backends import BACKENDS, GpuSlots, default_jobs, needs_gpu, visible_gpus
    from harness.events import Calibrated, Calibrating, Done, Fault, Loaded, LoadWarning, ProgressEvent
    from harness.pipeline import grade_batch, prepare_setup

    if backend not in BACKENDS:
        raise HarnessError(f"no backend {backend!r}; known: {', '.join(BACKENDS)}")
    setup = prepare_setup(
        rubric, data_dir, out, profile=profile, sandbox=sandbox, manual_csv=manual, threads=threads, pins=pins,
        memory_bytes=memory_bytes, cell_timeout_s=cell_timeout_s,
    )
    reference_dir = _reference_dir(rubric, setup.rubric.assignment, reference)
    if reference_dir is None:
        err_console.print("[yellow]no reference submission found: relative thresholds and budgets cannot be calibrated[/]")
    if jobs is None:
        jobs, why = default_jobs(setup.threads, setup.limits.memory_bytes)
        console.print(f"grading {why}", markup=False, highlight=False)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        bar = progress.add_task("loading", total=None)

        def on_event(event: ProgressEvent) -> None:
            if isinstance(event, Calibrating):
                progress.update(bar, description=f"calibrating {', '.join(event.tasks)} on the reference submission")
            elif isinstance(event, Calibrated):
                progress.update(bar, description="grading")
            elif isinstance(event, Loaded):
                progress.update(bar, total=event.total, description="grading")
            elif isinstance(event, LoadWarning):
                progress.console.print(f"  {event.student}: warning: {event.message}", markup=False, highlight=False)
            elif isinstance(event, Fault):
                progress.advance(bar)
                err_console.print(f"  error: {event.message}", markup=False, highlight=False)
            elif isinstance(event, Done):
                progress.advance(bar)
                mark = " (unchanged, not regraded)" if event.reused else ""
                progress.console.print(
                    f"  {event.student}: {event.score:.1f} / {event.points:.1f}{mark}", markup=False, highlight=False
                )

        slots = None
        if jobs_per_gpu > 1 and needs_gpu(setup):
            slots = GpuSlots(visible_gpus(), per_gpu=jobs_per_gpu)
        return grade_batch(
            submissions, setup, jobs=jobs, force=force, reference_dir=reference_dir, on_event=on_event,
            backend=backend, ray_address=ray_address, gpu_slots=slots,
        )


@app.command()
def overview(
    out: Path = typer.Argument(Path("out"), help="A folder holding one `grade --out` folder per assignment."),
) -> None:
    """Write OUT/index.html linking every assignment's index and every student's report under OUT."""
    from harness.reporting import render_overview

    if not out.is_dir():
        _fail(HarnessError(f"{out}: no such folder (grade something with `gradebench grade --out {out}/<assignment>` first)"))
    page, total = render_overview(out)
    if total == 0:
        _fail(HarnessError(f"{out}: no graded assignment folders found (each needs assignment.json and students/*/report.json)"))
    console.print(f"overview of {total} reports: {page}")


def load_rubric_file(path: Path) -> Any:
    """The rubric at ``path``, validated against the registered checks."""
    from harness.checks import known_checks
    from harness.rubric import load_rubric

    return load_rubric(path, known_checks=known_checks())


def _find_rubric_for(path: Path) -> Optional[Path]:
    """The packaged rubric with the most tasks whose sources are this file (or the files of this folder) by name;
    when no rubric names any of them, the one with the most tasks these files serve by content."""
    from harness.matching import CODE_SUFFIXES, plan_sources
    from harness.rubric import load_rubric

    files = [f for f in sorted(path.rglob("*")) if f.is_file()] if path.is_dir() else [path]
    names = [f.name for f in files]
    rubrics = {candidate: load_rubric(candidate) for candidate in sorted((REPO_ROOT / "rubrics").glob("*.yaml"))}
    counts = {c: sum(1 for task in r.automatic_tasks if task.find_source(names)) for c, r in rubrics.items()}
    if not any(counts.values()):
        base = path if path.is_dir() else path.parent
        texts = {}
        for f in files:
            if f.suffix.lower() in CODE_SUFFIXES:
                try:
                    texts[f.relative_to(base).as_posix()] = f.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
        counts = {c: len(plan_sources(r, texts).matched) for c, r in rubrics.items()}
    most = max(counts.values(), default=0)
    best = [candidate for candidate, count in counts.items() if count == most and count > 0]
    if len(best) > 1:  # the same notebook name in two courses: guessing would grade against the wrong text
        listed = ", ".join(f"--rubric {c.relative_to(REPO_ROOT)}" for c in best)
        raise HarnessError(f"{path.name} fits several rubrics equally well; choose one: {listed}")
    return best[0] if best else None


@app.command()
def check(
    source: Path = typer.Argument(..., help="Your notebook or script (CNNMNIST.ipynb), or the folder you hand in (q1.py ... q5.py)."),
    rubric: Optional[Path] = typer.Option(None, "--rubric", "-r", help="Rubric (default: the one with a task for this file)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Small data folder (default: next to the usual one; prepared on first use)."),
    sandbox: str = typer.Option("auto", help="auto, bubblewrap or plain (no isolation)."),
    memory: Optional[str] = MemoryOption,
    cell_timeout: Optional[float] = CellTimeoutOption,
    bundle: Optional[Path] = typer.Option(
        None, "--bundle", "-b", help="Your course's self-check bundle (.gbundle): its rubric and published bars; "
        "no course repository needed (default: $GRADEBENCH_BUNDLE, else the one .gbundle beside the notebook).",
    ),
) -> None:
    """Self-check a notebook, a script or a whole submission folder before you hand it in (fast profile).

    A folder runs every task whose notebook or script it holds, in the rubric's order in one
    workspace (a later script can load the checkpoint an earlier one saved). Exits 0 only when
    every automatic check passes (a check the bundle cannot run is listed, not counted against you).
    """
    from harness.bundle import data_differs, find_bundle, read_bundle
    from harness.calibration import calibrate_rubric
    from harness.checks import NOT_AVAILABLE
    from harness.data import prepare
    from harness.loading import load_submission
    from harness.models import LoadFailure
    from harness.outdir import claim_output
    from harness.pipeline import grade_submission, plan_for, prepare_setup

    if not source.exists():
        _fail(HarnessError(f"{source}: no such file or folder"))
    published = None
    try:
        if bundle is None and rubric is None:  # $GRADEBENCH_BUNDLE, or the course's bundle beside the notebook
            bundle = find_bundle(source if source.is_dir() else source.parent)
        if bundle is not None:
            published = read_bundle(bundle)
            if rubric is not None and load_rubric_file(rubric).hash != published.rubric.hash:
                raise HarnessError(
                    f"{rubric} is not the rubric of the bundle {bundle.name} (assignment {published.rubric.assignment}): "
                    "leave out --rubric, or use the bundle made from this rubric"
                )
            rubric = bundle
        rubric = rubric or _find_rubric_for(source)
    except HarnessError as error:
        _fail(error)
    if rubric is None:
        _fail(HarnessError(
            f"no rubric has a task for {source.name}{' (or any file in it)' if source.is_dir() else ''}; pass --bundle "
            "(your course's self-check bundle) or --rubric"
        ))
    data_dir = data or default_data_dir().with_name("data-small")
    out = default_data_dir().with_name("check") / source.stem
    try:
        with claim_output(out):
            if not (data_dir / "manifest.json").exists():
                console.print(f"preparing small offline datasets in {data_dir} (first use only)")
                prepare(data_dir, source="synthetic", small=True, on_progress=lambda line: console.print(f"  {line}"))
            setup = prepare_setup(
                rubric, data_dir, out, profile="fast", sandbox=_sandbox(sandbox),
                memory_bytes=_memory_bytes(memory), cell_timeout_s=cell_timeout, bundle=published,
            )
            differs = data_differs(published, data_dir) if published else []
            if differs:
                err_console.print(
                    f"[bold yellow]warning:[/] {', '.join(differs)} in {data_dir} is not the data the bundle's bars were "
                    "measured on (prepared otherwise): bars relative to the reference may not hold; use the small "
                    "data `gradebench check` prepares by default", highlight=False,
                )
            staging = out / "staging"
            if staging.exists():
                import shutil

                shutil.rmtree(staging)
            submission = load_submission(source, staging, student=source.stem)
            if isinstance(submission, LoadFailure):
                _fail(HarnessError(submission.reason))
            mine = list(plan_for(submission, setup.rubric).matched)
            if not mine:
                _fail(HarnessError(f"{source.name}: none of the rubric's notebooks or scripts is here"))
            # only the tasks of what was handed in: calibrating the rest would run notebooks nobody asked about
            setup.rubric = setup.rubric.restricted(mine)
            # a bundle brings its published calibration; the course repository calibrates on its reference
            reference_dir = None if published else _reference_dir(rubric, setup.rubric.assignment, None)
            if reference_dir is not None:
                calibrate_rubric(setup, reference_dir, lambda event: console.print(
                    f"calibrating {', '.join(getattr(event, 'tasks', ()))} on the reference submission (first use only)..."
                ))
            console.print(f"running {source.name} in the sandbox...")
            report = grade_submission(submission, setup)
    except HarnessError as error:
        _fail(error)
    except OSError as error:
        _fail(HarnessError(_os_message(error)))
    how = f"self-check bundle {bundle.name}" if bundle is not None else "fast profile"
    unchecked = sum(r.points for t in report.tasks for r in t.checks
                    if r.status == "skipped" and r.message.startswith(NOT_AVAILABLE))
    if unchecked:
        how += f"; {unchecked:g} of the points are checked only when you hand in"
    table = Table(title=f"{source.name}: {report.score:.1f} / {report.points:.1f} points ({how})")
    for column in ("task", "check", "result", "points"):
        table.add_column(column)
    colours = {"passed": "green", "failed": "red", "error": "yellow", "skipped": "dim"}
    problems = []
    for task in report.tasks:
        for result in task.checks:
            table.add_row(task.task, result.check, f"[{colours[result.status]}]{result.status}[/]", f"{result.score:g}/{result.points:g}")
            if result.status != "passed":
                problems.append((task.task, result))
    console.print(table)
    for task in report.tasks:
        if not task.manual and task.source_note:
            console.print(f"{task.task} graded {task.source or 'nothing'}: {task.source_note}", markup=False, highlight=False)
    for task_id, result in problems:
        if result.message.startswith(NOT_AVAILABLE):
            who = "checked when you hand in"
        else:
            who = "a grader fault, not yours" if result.status == "error" else "what to fix"
        console.print(f"[bold]{task_id} / {result.check}[/] ({who}):", highlight=False)
        console.print(f"  {result.message}", highlight=False, markup=False)
    from harness.reporting import held_note

    for task in report.tasks:  # passed, but resting on predictions the grader could not confirm
        for result in task.checks:
            if held_note(result, task):
                console.print(f"[bold]{task.task} / {result.check}[/] (held for a TA's review):", highlight=False)
                console.print(f"  {held_note(result, task)}", highlight=False, markup=False)
    if any(not (r.status == "skipped" and r.message.startswith(NOT_AVAILABLE)) for _, r in problems):
        raise typer.Exit(code=1)
    console.print("every automatic check passes")


bundle_app = typer.Typer(help="Self-check bundles for students (the rubric and published bars, no reference code).",
                         no_args_is_help=True)
app.add_typer(bundle_app, name="bundle")


@bundle_app.command("make")
def bundle_make(
    rubric: Path = typer.Option(..., "--rubric", "-r", help="The assignment's rubric (rubrics/dl2025-a2.yaml)."),
    out: Path = typer.Option(..., "--out", "-o", help="The bundle to write (dl2025-a2.gbundle)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Small data folder (default: the one `gradebench check` "
                                        "uses; prepared on first use): the bars are measured on it."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="The reference submission to calibrate on "
                                             "(default: submissions/<assignment>/reference)."),
    sandbox: str = typer.Option("auto", help="auto, bubblewrap or plain (no isolation)."),
) -> None:
    """Make a student self-check bundle: calibrate on the reference (fast profile, as `check` grades) if needed,
    then write the rubric, the calibration and the reference's architecture descriptions into one file."""
    import tempfile

    from harness.bundle import make_bundle
    from harness.data import prepare
    from harness.calibration import calibrate_rubric
    from harness.pipeline import prepare_setup

    data_dir = data or default_data_dir().with_name("data-small")
    started = time.perf_counter()
    try:
        if not (data_dir / "manifest.json").exists():
            console.print(f"preparing small offline datasets in {data_dir}")
            prepare(data_dir, source="synthetic", small=True, on_progress=lambda line: console.print(f"  {line}"))
        with tempfile.TemporaryDirectory(prefix="gradebench-bundle-") as work:
            setup = prepare_setup(rubric, data_dir, Path(work), profile="fast", sandbox=_sandbox(sandbox))
            reference_dir = _reference_dir(rubric, setup.rubric.assignment, reference)
            if reference_dir is None:
                raise HarnessError(f"no reference submission for {setup.rubric.assignment}: pass --reference")
            console.print(f"calibrating on {reference_dir} (cached after the first time)...")
            calibrate_rubric(setup, reference_dir)
            written = make_bundle(setup, out)
    except HarnessError as error:
        _fail(error)
    except OSError as error:
        _fail(HarnessError(_os_message(error)))
    console.print(f"wrote {written} ({written.stat().st_size:,} bytes, {len(setup.rubric.automatic_tasks)} tasks) "
                  f"in {time.perf_counter() - started:.0f} s")


@app.command("checks")
def list_checks(
    name: Optional[str] = typer.Argument(None, help="One check (parameter_count); default: every check."),
) -> None:
    """List the checks a rubric may use and the keys of its entry each reads (for course authors)."""
    from harness.checks import get_check, known_checks
    from harness.rubric import declared_keys

    declared = known_checks()
    if name is not None and name not in declared:
        _fail(HarnessError(f"no check {name!r}; known: {', '.join(declared)}"))
    for check_name, declaration in declared.items():
        if name is not None and check_name != name:
            continue
        doc = (get_check(check_name).__doc__ or "").strip().splitlines()[0]
        console.print(f"[bold]{check_name}[/]: {doc}", highlight=False)
        keys = declared_keys(declaration)
        if not keys:
            console.print("  reads nothing but points", highlight=False)
        for key in keys:
            need = "required" if key.required else ("optional" if key.default is None else f"default {key.default!r}")
            console.print(f"  {key.key} ({key.takes}; {need}): {key.about}", highlight=False, markup=False)


@app.command()
def bench(
    task: Optional[list[str]] = typer.Option(None, "--task", "-t", help="Only this reference task (repeatable), e.g. mnist-cnn."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data folder (default: the small one next to the usual one; prepared on first use)."),
    profile: str = typer.Option("fast", help="fast (subsets, few epochs) or full (all prepared data)."),
    history: Optional[Path] = typer.Option(None, help="SQLite file of every run (default <data>/bench/history.sqlite)."),
    out: Optional[Path] = typer.Option(None, help="The HTML page (default <data>/bench/index.html); plots go beside it."),
    save_baseline: bool = typer.Option(False, "--save-baseline", help="Make this run the baseline later runs compare with."),
    threads: Optional[int] = typer.Option(None, help="Torch threads (default: all cores)."),
    max_accuracy_drop: float = typer.Option(2.0, min=0, help="Accuracy may drop at most this many points (absolute)."),
    max_loss_rise: float = typer.Option(10.0, min=0, help="A loss may rise at most this many percent."),
    max_time_growth: float = typer.Option(50.0, min=0, help="Wall time may grow at most this many percent (same machine only)."),
    time_slack: float = typer.Option(0.5, min=0, help="Wall-time growth under this many seconds is never a regression."),
) -> None:
    """Benchmark the references: train them, keep the figures in a history, compare with the baseline.

    Exits 1 when a metric regressed beyond its tolerance or a reference could not be trained.
    """
    from harness import bench as benchmark
    from harness.data import prepare

    data_dir = data or default_data_dir().with_name("data-small")
    history_path = history or data_dir / "bench" / "history.sqlite"
    page = out or data_dir / "bench" / "index.html"
    if page.is_dir():
        page = page / "index.html"
    tolerances = benchmark.Tolerances(
        accuracy_points=max_accuracy_drop, loss_percent=max_loss_rise, time_percent=max_time_growth, time_slack_s=time_slack
    )
    try:
        if data is None and not (data_dir / "manifest.json").exists():
            console.print(f"preparing small offline datasets in {data_dir} (first use only)")
            prepare(data_dir, source="synthetic", small=True, on_progress=lambda line: console.print(f"  {line}"))
        with benchmark.HistoryStore(history_path) as store:  # opened first: a bad --history fails before training
            run = benchmark.run_references(
                data_dir, profile=profile, tasks=task or None, threads=threads, calibration_out=page.parent / "last-run.json",
                on_progress=lambda line: console.print(f"  {line}", highlight=False),
            )
            comparisons = benchmark.compare(run, store.runs(profile), tolerances)
            run = store.add(run, save_baseline=save_baseline)
            runs = store.runs(profile)
        page = benchmark.render_history(runs, run, comparisons, page, calibration="last-run.json")
    except HarnessError as error:
        _fail(error)
    except OSError as error:
        _fail(HarnessError(_os_message(error)))
    console.print(bench_table(run, comparisons))
    regressions = [row for row in comparisons if row.regressed]
    for row in regressions:
        err_console.print(f"[bold red]regression:[/] {row.message}", highlight=False)
    for note in benchmark.timing_notes(comparisons):
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    marked = sum(result.baseline for result in run.results)
    if marked:
        console.print(f"run #{run.id}: the baseline of {marked} task(s) from now on", highlight=False)
    console.print(f"history: {history_path}; page: {page}", highlight=False)
    if regressions:
        err_console.print(f"{len(regressions)} regression(s) against the baseline", highlight=False)
        raise typer.Exit(code=1)
    console.print("no regressions against the baseline")


def bench_table(run: Any, comparisons: list) -> Table:
    """The benchmark comparison as a table: every judged metric's baseline, value now, change and verdict."""
    from harness.bench import table_rows

    table = Table(title=f"benchmark run #{run.id} ({run.profile} profile) against the baseline")
    for column in ("task", "metric", "baseline", "now", "change", "verdict"):
        # fold rather than cut long names (min_hidden_class_accuracy) in a narrow terminal
        table.add_column(column, justify="right" if column in ("baseline", "now", "change") else "left", overflow="fold")
    colours = {"ok": "green", "better": "green", "regression": "bold red", "failed": "bold red", "new": "dim",
               "not compared": "yellow"}
    for row in table_rows(comparisons):
        table.add_row(row["task"], row["metric"], row["baseline"], row["now"], row["change"],
                      f"[{colours[row['verdict']]}]{row['verdict']}[/]")
    return table



@app.command("export")
def export_results(
    out: Path = typer.Argument(
        ..., help="The folder `gradebench grade --out` wrote (results.sqlite, students/*/report.json)."
    ),
    fmt: str = typer.Option(..., "--format", "-f", help="canvas, gradescope, moodle or csv."),
    to: Optional[Path] = typer.Option(
        None, "--to",
        help="Where to write (default OUT/exports/canvas.csv, moodle.csv, gradebook.csv; for gradescope the folder "
        "OUT/exports/gradescope/, one <student>/results.json each).",
    ),
    canvas_assignment_id: Optional[str] = typer.Option(
        None, help="Canvas's id of the assignment: the column is then '<title> (<id>)', which Canvas matches exactly."
    ),
    visibility: str = typer.Option(
        "visible", help="Gradescope: when students see results (visible, hidden, after_due_date, after_published)."
    ),
) -> None:
    """Export graded results for an LMS: Canvas or Moodle grade imports, Gradescope results.json files, the gradebook."""
    from harness.export import ExportOptions, export, not_graded_yet

    try:
        options = ExportOptions(canvas_assignment_id=canvas_assignment_id, visibility=visibility)
        graded, written = export(out, fmt, to, options)
    except HarnessError as error:
        _fail(error)
    for problem in graded.skipped:
        err_console.print(f"[yellow]skipped[/] {problem}", highlight=False)
    pending = sum(1 for r in graded.reports if any(not_graded_yet(t) for t in r.tasks))
    if pending:
        err_console.print(
            f"[yellow]note:[/] {pending} student(s) have written answers a TA has not graded yet; "
            "they count 0 in this export",
            soft_wrap=True,
        )
    held = sum(1 for r in graded.reports if r.held_points)
    if held:
        err_console.print(
            f"[yellow]note:[/] {held} student(s) have points held for a TA's review (predictions the grader could not "
            "confirm); they count 0 in this export until a TA releases them in the manual-scores file",
            soft_wrap=True,
        )
    where = written[0] if len(written) == 1 else f"{len(written)} files under {written[0].parent.parent}"
    console.print(
        f"exported {len(graded.reports)} student(s) of {graded.title} ({fmt}): {where}", highlight=False, soft_wrap=True
    )


AUTOGRADER_CONFIG = Path("/autograder/source/gradebench.yaml")
"""Where `gradebench autograde` looks for its settings by default: the autograder's source folder."""


def _autograder_config(path: Path) -> dict[str, Any]:
    """The settings of an autograder config file (YAML: rubric, profile, data, reference, visibility); {} when absent.

    Relative paths in it are relative to the file's folder (the autograder's source folder).
    """
    import yaml

    if not path.is_file():
        return {}
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise HarnessError(f"{path}: unreadable autograder config ({error})") from None
    known = {"rubric", "profile", "data", "reference", "visibility", "sandbox"}
    if not isinstance(document, dict) or set(document) - known:
        unknown = sorted(set(document) - known) if isinstance(document, dict) else document
        raise HarnessError(f"{path}: unknown setting(s) {unknown}; known: {', '.join(sorted(known))}")
    for key in ("rubric", "data", "reference"):
        if document.get(key) is not None:
            document[key] = (path.parent / str(document[key])).resolve()
    return document


def _gradescope_student(metadata: Path) -> str:
    """The names of who handed in, from Gradescope's submission metadata; 'submission' when it is not there."""
    import json

    try:
        users = json.loads(metadata.read_text(encoding="utf-8")).get("users") or []
        names = [str(u["name"]) for u in users if u.get("name")]
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return "submission"
    return ", ".join(names) or "submission"


@app.command()
def autograde(
    submission: Path = typer.Option(
        Path("/autograder/submission"), help="The one submission to grade (a folder, or a file)."
    ),
    results: Path = typer.Option(
        Path("/autograder/results/results.json"), help="Where the Gradescope results.json goes."
    ),
    rubric: Optional[Path] = typer.Option(
        None, "--rubric", "-r", envvar="GRADEBENCH_RUBRIC",
        help="The rubric (else $GRADEBENCH_RUBRIC, else the config's).",
    ),
    config: Path = typer.Option(
        AUTOGRADER_CONFIG, envvar="GRADEBENCH_AUTOGRADER_CONFIG",
        help="YAML settings: rubric, profile, data, reference, visibility, sandbox.",
    ),
    data: Optional[Path] = DataOption,
    profile: Optional[str] = typer.Option(None, help="full or fast (default: the config's, else full)."),
    metadata: Path = typer.Option(
        Path("/autograder/submission_metadata.json"), help="Gradescope's submission metadata (the student's name)."
    ),
    sandbox: Optional[str] = typer.Option(None, help="auto, bubblewrap or plain (default: the config's, else auto)."),
    calibrate_only: bool = typer.Option(
        False,
        help="Only calibrate on the reference submission (in setup.sh: every submission's run then reads the cache).",
    ),
) -> None:
    """Grade the one submission of a Gradescope autograder run and write its results.json (`run_autograder` runs this).

    A results.json is written whatever happens: when the grader itself fails, it says so (score 0) and the
    command exits 2, so Gradescope shows the reason instead of a bare failure.
    """
    import json
    import tempfile

    from harness.calibration import calibrate_rubric
    from harness.export import ExportOptions, gradescope_results
    from harness.pipeline import grade_single, prepare_setup

    def write(document: dict[str, Any]) -> None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")

    try:
        settings = _autograder_config(config)
        rubric_path = rubric or settings.get("rubric")
        if rubric_path is None:
            raise HarnessError(
                f"no rubric: pass --rubric, set GRADEBENCH_RUBRIC, or name it in {config} "
                "(rubric: rubrics/<assignment>.yaml)"
            )
        data_dir = data or settings.get("data") or default_data_dir()
        if not (Path(data_dir) / "manifest.json").is_file():
            raise HarnessError(
                f"no prepared data in {data_dir}: run `gradebench data prepare --data {data_dir}` in setup.sh"
            )
        options = ExportOptions(visibility=str(settings.get("visibility", "visible")))
        with tempfile.TemporaryDirectory(prefix="gradebench-autograde-") as work:
            setup = prepare_setup(
                Path(rubric_path), Path(data_dir), Path(work), profile=profile or settings.get("profile", "full"),
                sandbox=_sandbox(sandbox or settings.get("sandbox", "auto")),
            )
            reference = settings.get("reference") or _reference_dir(Path(rubric_path), setup.rubric.assignment, None)
            if calibrate_only:
                if reference is None:
                    raise HarnessError(
                        f"no reference submission to calibrate with: name it in {config} (reference: DIR)"
                    )
                calibrate_rubric(setup, reference)
                console.print(
                    f"calibrated {setup.rubric.assignment} on {reference} (cached in {data_dir})", soft_wrap=True
                )
                return
            if not submission.exists():
                raise HarnessError(f"{submission}: no such file or folder (nothing was handed in?)")
            report = grade_single(submission, setup, student=_gradescope_student(metadata), reference_dir=reference)
        write(gradescope_results(report, options))
    except Exception as error:  # any failure: Gradescope must still get a results.json that says what happened
        message = str(error) if isinstance(error, HarnessError) else f"{type(error).__name__}: {error}"
        if calibrate_only:  # set-up time: no submission, so no results.json
            _fail(HarnessError(message))
        try:
            write({
                "score": 0,
                "execution_time": 0,
                "output": f"The autograder could not grade this submission (a grader fault, not yours; "
                f"a TA will look): {message}",
                "visibility": "visible",
                "stdout_visibility": "hidden",
                "tests": [],
            })
        except OSError as write_error:
            err_console.print(f"[bold red]error:[/] could not write {results}: {write_error}")
        _fail(HarnessError(message))
    console.print(
        f"{report.student}: {report.score:g} / {report.points:g} points; results: {results}",
        highlight=False, soft_wrap=True,
    )


def main() -> None:
    """Entry point of the `gradebench` console script: the command, then the process ends at once (``_leave``)."""
    try:
        app()  # typer's standalone mode ends every command, the failed ones too, in SystemExit
    except SystemExit as done:
        _leave(done.code)
    _leave(0)


def _leave(code: int | str | None) -> None:
    """End the process with ``code`` once what it wrote is out, without the interpreter's teardown.

    The teardown frees every module's objects one by one and runs the destructors of the libraries loaded: after
    torch, pandas and matplotlib that is half a second (0.36 s for torch alone) that a TA waits for after the
    command has done everything. Nothing is left for it: the commands close their files, stores, locks, worker
    pools and sandboxes themselves, and every sandboxed process has been reaped before a command returns.
    ``logging.shutdown`` flushes the log handlers; a message given as the exit code is printed as Python would.
    """
    import logging
    import sys

    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(code or 0)
