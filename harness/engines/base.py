"""Run one source of a submission (a notebook or a script) in the sandbox, and read back how it went.

The base class owns the whole lifecycle; a subclass only says how to invoke the runner:

1. a fresh workspace: a copy of the submission's staged files, in a folder of its own;
2. an empty artifacts folder, the only other place the student's code may write, and an empty records
   folder for the runner's run.json and executed.ipynb, moved into the artifacts folder when the run is
   over, replacing whatever the student's code left there under those names. An isolating sandbox
   (``passes_descriptors``) never mounts the records folder: the host opens the two files and passes
   their descriptors to the runner, which alone writes through them (out of the student's reach, root
   or not). Another sandbox mounts it (``private``: out of reach where the sandbox runs the student's
   code as a user of its own);
3. the runner's config (JSON): evaluation images, data root, preferred model names, timeouts;
4. the sandboxed command ``python -m harness.engines.runner ...`` with the interpreter and the
   harness mounted read-only, the public data read-only, the evaluation images (never their
   labels) read-only, SIGNS' ``sign_data`` inside the workspace, the artifacts folder writable;
5. run.json read back (validated, capped) into an :class:`ExecutionResult`.

Timeouts: the sandbox's wall-clock limit stops a runaway run as a whole; the runner's per-cell
timeout keeps one slow cell from eating the time of the rest (and of the probe).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from harness.contract import (
    CONFIG_FILE,
    CONFIG_FORMAT,
    DEFAULT_INPUT_SHAPES,
    EXECUTED_FILE,
    MAX_JSON_BYTES,
    OFFLINE_ENV,
    RUN_FILE,
    CallSpec,
    ContractError,
    RunnerConfig,
    RunRecord,
)
from harness.errors import HarnessError
from harness.models import CellError, ExecutionResult, Limits, SandboxResult, Submission
from harness.sandbox.base import Gate

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Thread-count variables set to the run's thread budget."""


@dataclass(frozen=True)
class RunSettings:
    """Everything one run needs besides the submission: limits, timeouts, data and what the probe looks for."""

    limits: Limits = field(default_factory=Limits)
    """Resource limits of the whole sandboxed run (its wall limit stops a runaway run)."""
    cell_timeout_s: float | None = 600.0
    """Seconds one notebook cell (or a whole script) may run before it is interrupted; None: no limit."""
    probe_timeout_s: float = 120.0
    """Seconds the probe may take after the student's code."""
    threads: int = 1
    """CPU threads torch and the BLAS libraries may use."""
    seed: int | None = None
    """The seed of ``random``, NumPy and torch before the student's first line (the rubric's); None: unseeded."""
    data_dir: Path | None = None
    """A prepared data folder (``harness.data.prepare``): its ``public/`` part is mounted read-only."""
    eval_images: Mapping[str, Path] = field(default_factory=dict)
    """Per dataset, a host ``.npy`` of uint8 evaluation images (labels stay on the host)."""
    datasets: tuple[str, ...] = ()
    """Datasets the source reads (``mnist``...): torchvision is redirected for MNIST and FashionMNIST,
    ``sign_data`` is provided for ``signs``. The evaluation datasets are added automatically."""
    prefer: tuple[str, ...] = ()
    """Model names the rubric prefers (``Net``, ``model``): such candidates come first."""
    task_values: tuple[str, ...] = ()
    """Namespace names whose values the probe records (JSON values inline, big arrays as tensor files)."""
    calls: tuple[dict[str, Any], ...] = ()
    """Functions the probe calls on fixed inputs after the run: ``{"id", "names", "inputs"}`` each
    (the first of ``names`` that is callable, on ``harness.probes.fixed_inputs.build(inputs)``)."""
    input_shapes: tuple[tuple[int, ...], ...] | None = None
    """Dummy-batch shapes to try; None: by the first dataset (``DEFAULT_INPUT_SHAPES``)."""
    max_candidates: int = 12
    """Model candidates the probe inspects at most."""
    export_inputs: int = 1_000
    """Preprocessed evaluation images exported with each model, for the host to recompute outputs."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables for the run."""


KINDS = ("notebook", "script")
"""What the runner can run: a notebook (cell by cell with nbclient) or a script (as ``__main__``)."""


class Engine:
    """Runs one notebook or script of a submission in a sandbox, with the runner of its kind."""

    data_mount: ClassVar[PurePosixPath] = PurePosixPath("/gradebench/data")
    """Where the public data appears inside an isolating sandbox."""
    eval_mount: ClassVar[PurePosixPath] = PurePosixPath("/gradebench/eval")
    """Where the evaluation images appear inside an isolating sandbox."""
    config_mount: ClassVar[PurePosixPath] = PurePosixPath("/gradebench/config.json")
    """Where the runner's config appears inside an isolating sandbox."""

    def __init__(self, sandbox: Any, kind: str) -> None:
        """An engine running sources of ``kind`` (``notebook`` or ``script``) in ``sandbox``."""
        if kind not in KINDS:
            raise HarnessError(f"no engine {kind!r}; known: {', '.join(KINDS)}")
        self.sandbox = sandbox
        self.kind = kind
        """The runner's ``--kind``: ``notebook`` or ``script``."""

    def command(
        self, source: str, config: Path, artifacts: Path, records: Path | None = None,
        record_fds: Sequence[int] = (), hold: bool = False,
    ) -> list[str]:
        """The command that runs ``source`` (relative to the workspace) inside the sandbox: the runner of this
        engine's kind."""
        return runner_command(self.kind, source, config, artifacts, records, record_fds, hold)

    def run(
        self,
        submission: Submission,
        source: str,
        out_dir: Path,
        settings: RunSettings,
        *,
        workspace: Path | None = None,
        gate: Gate | None = None,
    ) -> ExecutionResult:
        """Run ``source`` of ``submission`` under ``settings``; ``out_dir`` gets ``artifacts/``.

        Without ``workspace`` the run gets a fresh copy of the submission in ``out_dir/workspace``.
        Given one (made with :func:`make_workspace`), the run works in it as the previous steps
        left it: a later step can load the checkpoint an earlier one saved.

        ``gate`` (a sandbox that ``holds`` only): the run is held once its kernel is started and the hidden setup
        has run, until the gate opens; the wall limit counts from there. Closed without a go, the run ends
        without running any of the source.
        """
        from harness.sandbox import Mount, python_mounts

        if source not in submission.files:
            raise HarnessError(f"{submission.student}: {source} is not among the submission's files")
        out_dir = Path(out_dir)
        if workspace is None:
            workspace = make_workspace(submission, out_dir / "workspace")
        workspace = Path(workspace).resolve()
        artifacts = _fresh(out_dir / "artifacts")
        records = _fresh(out_dir / "records")
        remap = bool(getattr(self.sandbox, "isolated", False))
        # an isolating sandbox passes descriptors in: the records are files it never mounts, written through them
        by_descriptor = bool(getattr(self.sandbox, "passes_descriptors", False))

        def inside(host: Path, fixed: PurePosixPath) -> str:
            return str(fixed) if remap else str(host.resolve())

        mounts = [*python_mounts(), Mount(source=artifacts, target=artifacts, writable=True)]
        if not by_descriptor:
            mounts.append(Mount(source=records, target=records, writable=True, private=True))
        datasets = tuple(dict.fromkeys((*settings.datasets, *settings.eval_images)))
        # every dataset's shapes, in the datasets' order: a notebook with a SIGNS CNN and a FashionMNIST
        # autoencoder needs (3, 64, 64) for the one and (1, 28, 28) for the other
        shapes = settings.input_shapes or tuple(
            dict.fromkeys(s for d in datasets for s in DEFAULT_INPUT_SHAPES.get(d, ()))
        )
        data_root = None
        if settings.data_dir is not None:
            public = (Path(settings.data_dir) / "public").resolve()
            if not public.is_dir():
                raise HarnessError(f"{settings.data_dir}: no public/ folder; run `gradebench data prepare` first")
            data_root = inside(public, self.data_mount)
            mounts.append(Mount(source=public, target=Path(data_root)))
            if "signs" in datasets and (public / "sign_data").is_dir():
                mounts += _provide_sign_data(public / "sign_data", workspace, remap, Mount)
        evaluation = {}
        for dataset, images in settings.eval_images.items():
            images = Path(images).resolve()
            if not images.is_file():
                raise HarnessError(f"evaluation images for {dataset} not found: {images}")
            evaluation[dataset] = inside(images, self.eval_mount / f"{dataset}-images.npy")
            mounts.append(Mount(source=images, target=Path(evaluation[dataset])))
        config = RunnerConfig(
            format=CONFIG_FORMAT,
            kind=self.kind,  # type: ignore[arg-type]  (checked in __init__)
            source=source,
            workspace=str(workspace),
            datasets=datasets,
            prefer=tuple(settings.prefer),
            task_values=tuple(settings.task_values),
            calls=tuple(CallSpec.from_json(dict(call)) for call in settings.calls),
            cell_timeout_s=settings.cell_timeout_s,
            probe_timeout_s=settings.probe_timeout_s,
            step_timeout_s=max(5.0, settings.probe_timeout_s / 4),
            probe_budget_s=settings.probe_timeout_s * 0.75,
            threads=settings.threads,
            seed=settings.seed,
            max_candidates=settings.max_candidates,
            export_inputs=settings.export_inputs,
            output_bytes=settings.limits.output_bytes,
            eval=evaluation,
            input_shapes=tuple(tuple(s) for s in shapes) or None,
            data_root=data_root,
        )

        config_host = out_dir / CONFIG_FILE
        config_host.write_text(json.dumps(config.to_json(), indent=1), encoding="utf-8")
        config_path = inside(config_host, self.config_mount)
        mounts.append(Mount(source=config_host.resolve(), target=Path(config_path)))

        env = {
            "PYTHONUNBUFFERED": "1",
            "PYTHONNOUSERSITE": "1",
            "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            **OFFLINE_ENV,
            "MPLBACKEND": "module://harness.probes.mpl_backend",
            **{name: str(settings.threads) for name in THREAD_VARIABLES},
            **_gpu_environment(settings.limits),
            **settings.env,
        }
        # sandboxes that cannot hold, or pass descriptors, take no such argument
        extra: dict[str, Any] = {"gate": gate} if gate is not None else {}
        descriptors = open_records(records) if by_descriptor else []
        try:
            if descriptors:
                extra["pass_fds"] = descriptors
            command = self.command(source, Path(config_path), artifacts, None if descriptors else records,
                                   record_fds=descriptors, hold=gate is not None)
            result = self.sandbox.run(command, workspace=workspace, limits=settings.limits, mounts=mounts, env=env,
                                      **extra)
        finally:
            for descriptor in descriptors:
                os.close(descriptor)
        adopt_records(records, artifacts)
        return read_execution(source, result, artifacts)


def _gpu_environment(limits: Limits) -> dict[str, str]:
    """CUDA_VISIBLE_DEVICES of a run: none for a CPU run, its GPU slot for a GPU run (unset: every GPU)."""
    if not limits.gpu:
        return {"CUDA_VISIBLE_DEVICES": ""}
    return {"CUDA_VISIBLE_DEVICES": ",".join(limits.gpu_devices)} if limits.gpu_devices else {}


RECORD_FILES = (RUN_FILE, EXECUTED_FILE)
"""What the runner writes into the records folder (or through its descriptors, in this order); the host moves them
into the artifacts folder."""


def runner_command(
    kind: str, source: str, config: Path, artifacts: Path, records: Path | None = None,
    record_fds: Sequence[int] = (), hold: bool = False,
) -> list[str]:
    """``python -P -m harness.engines.runner`` with this interpreter and the given arguments (``--hold``: the runner
    waits for the go on its stdin after the setup).

    ``-P``: the working directory (the student's folder) is not put on ``sys.path``, so no file of the
    student's can stand in for a module the runner imports.
    """
    command = [
        sys.executable, "-P", "-m", "harness.engines.runner",
        "--kind", kind, "--source", source, "--config", str(config), "--artifacts", str(artifacts),
    ]
    if record_fds:
        command += ["--record-fds", ",".join(str(fd) for fd in record_fds)]
    elif records is not None:
        command += ["--records", str(records)]
    return command + (["--hold"] if hold else [])


def open_records(records: Path) -> list[int]:
    """Descriptors of the empty ``RECORD_FILES`` in ``records`` (a host folder no sandbox mounts), for the runner to
    write through; the caller closes them. Private to the harness's user: nothing inside the sandbox can open them by
    a path, only write through the descriptors the runner holds."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptors: list[int] = []
    try:
        for name in RECORD_FILES:
            descriptors.append(os.open(records / name, flags, 0o600))
    except OSError:
        for descriptor in descriptors:
            os.close(descriptor)
        raise
    return descriptors


def adopt_records(records: Path, artifacts: Path) -> None:
    """Move the runner's ``RECORD_FILES`` from ``records`` into ``artifacts``, then remove ``records``.

    Whatever the student's code wrote under those names in ``artifacts`` is thrown away first: only the
    runner's files are read back, and a run that left none has none (it died before the runner wrote it).
    """
    for name in RECORD_FILES:
        target = artifacts / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        written = records / name
        # empty: a file the host opened for the runner, which never wrote it (the run died first)
        if written.is_file() and not written.is_symlink() and written.stat().st_size > 0:
            os.replace(written, target)
    shutil.rmtree(records, ignore_errors=True)


def make_workspace(submission: Submission, folder: Path) -> Path:
    """A fresh private copy of the submission's staged files at ``folder`` (symbolic links left out)."""
    workspace = _fresh(folder)
    shutil.copytree(submission.root, workspace, dirs_exist_ok=True, ignore=_symlinks)
    return workspace


def _symlinks(folder: str, names: list[str]) -> list[str]:
    """Names in ``folder`` that are symbolic links: never copied into a workspace (they could point anywhere)."""
    return [name for name in names if Path(folder, name).is_symlink()]


def _fresh(folder: Path) -> Path:
    """An empty folder at ``folder`` (whatever was there is removed; a mount point, a size-limited
    workspace, stays and is emptied)."""
    if os.path.ismount(folder):
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return folder.resolve()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder.resolve()


def _provide_sign_data(sign_data: Path, workspace: Path, remap: bool, mount_class: Any) -> list[Any]:
    """Make ``sign_data/`` appear in the workspace: a read-only mount when isolated, else a copy."""
    target = workspace / "sign_data"
    if target.is_symlink() or target.is_file():
        target.unlink()
    if remap:
        target.mkdir(exist_ok=True)
        return [mount_class(source=sign_data, target=target)]
    shutil.copytree(sign_data, target, dirs_exist_ok=True)
    return []


def read_execution(source: str, sandbox: SandboxResult, artifacts: Path) -> ExecutionResult:
    """Turn the sandbox result and the runner's run.json into an ExecutionResult (run.json is validated and capped,
    read here once: the ExecutionResult carries the record on to the checks)."""
    run = read_run_json(artifacts)
    if run is None:
        left = artifacts if any(artifacts.iterdir()) else None
        return ExecutionResult(source=source, sandbox=sandbox, artifacts_dir=left)
    errors = tuple(
        CellError(cell=e.cell, ename=e.ename, evalue=e.evalue, source_excerpt=e.source_excerpt) for e in run.errors
    )
    return ExecutionResult(
        source=source,
        sandbox=sandbox,
        cells_run=run.cells_run,
        cells_total=run.cells_total,
        errors=errors,
        artifacts_dir=artifacts,
        missing_packages=run.missing_packages,
        run=run,
    )


def read_run_json(artifacts: Path) -> RunRecord | None:
    """The runner's run.json, checked against ``harness.contract``; None when it is missing (the run died before
    the runner).

    Raises HarnessError when it exists but is malformed: the file is written by the harness,
    so a broken one means the run was tampered with or the runner is faulty.
    """
    path = Path(artifacts) / RUN_FILE
    if not path.is_file() or path.is_symlink():
        return None
    if path.stat().st_size > MAX_JSON_BYTES:
        raise HarnessError(f"{path}: {path.stat().st_size:,} bytes, over the {MAX_JSON_BYTES:,} cap")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise HarnessError(f"{path}: not valid JSON ({error})") from None
    try:
        run = RunRecord.from_json(value)
    except ContractError as error:
        raise HarnessError(f"{path}: {error}") from None
    errors = tuple(
        replace(e, ename=e.ename[:200], evalue=e.evalue[:2_000], source_excerpt=e.source_excerpt[:500])
        for e in run.errors[:200]
    )
    return replace(run, errors=errors)
