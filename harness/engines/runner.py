"""Run one notebook or script of a submission and record how it went: the sandbox's entry point.

    python -P -m harness.engines.runner --kind notebook|script --source REL --config CONFIG.json --artifacts DIR
        [--records DIR | --record-fds RUN,EXECUTED]

A notebook runs in a fresh IPython kernel on this same interpreter (nbclient), cell by cell
with errors allowed: a hidden setup cell (``harness.probes.bootstrap.install``) goes first,
the probe cell (``harness.probes.probe.run``) last. A failing cell fails alone; a cell over
the per-cell timeout is interrupted and the rest still run; a dead kernel ends the run and
the probe is skipped with that reason. A script runs as ``__main__`` in this process, with
its folder as working directory and on ``sys.path``, then the probe reads its globals (also
after an exception: whatever exists is probed).

``run.json`` (ARTIFACTS.md) is rewritten after every cell, so a run the sandbox kills still
leaves its progress behind. It goes (``executed.ipynb`` too) through ``--record-fds``, descriptors of
files the host opened outside the sandbox's mounts (``RecordDescriptors``: out of reach of the student's
code, root or not), else to ``--records``, a folder apart from the artifacts the probe writes. When the
sandbox offers a second user (as root), the kernel runs as that user (``harness.engines.kernel_user``)
and can neither signal nor trace the runner. The exit status is 0 whatever the student's code did;
non-zero means the runner itself failed.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.contract import EXECUTED_FILE, OFFLINE_ENV, RUN_FILE, RUN_FORMAT, RunnerConfig

MAX_TRACEBACK_CHARS = 4_000
"""Traceback text kept per error (the end of it)."""

MAX_CELL_OUTPUT_CHARS = 20_000
"""Text output kept per cell in executed.ipynb."""

MAX_NOTEBOOK_OUTPUT_CHARS = 2_000_000
"""Text output kept in executed.ipynb over all cells; later outputs are dropped."""

MAX_KEPT_OUTPUT_CHARS = 4_000_000
"""Output (text and base64 images) nbclient keeps in memory per cell; more is dropped as it arrives."""

DEFAULT_OUTPUT_BYTES = 1024**2
"""Text a cell may print when the config gives no ``output_bytes`` (the sandbox's ``Limits.output_bytes``)."""

FLOOD_GRACE_S = 2.0
"""Seconds a flooding cell gets to stop after its interrupt: one that still prints is killed then; one that neither
prints nor ends is interrupted again, and killed after as long again."""

MAX_ERRORS = 200
"""Errors recorded per run."""

RECOVERY_TIMEOUT_S = 15
"""Seconds a kernel gets to answer again after a cell was interrupted for running too long."""

TIMEOUT_ENAME = "GradebenchCellTimeout"
"""Marks the reply nbclient makes up for a cell it interrupted after the per-cell timeout."""

KERNEL_NAME = "gradebench-python"
"""The kernelspec written for this run: this interpreter, with ipykernel."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class ScriptTimeout(BaseException):
    """Raised in a script that ran past its time limit (a BaseException: ``except Exception`` lets it through)."""


class OutputFlood(BaseException):
    """Raised in a script by a print past the output limit (a BaseException, as ScriptTimeout)."""


# --------------------------------------------------------------------------- records


def new_record(source: str, kind: str) -> dict[str, Any]:
    """An empty run.json record."""
    return {
        "format": RUN_FORMAT,
        "source": source,
        "kind": kind,
        "cells_total": 0,
        "cells_run": 0,
        "errors": [],
        "cell_seconds": [],
        "timed_out_cell": None,
        "running_cell": None,
        "outputs_cut": [],
        "outputs_flooded": [],
        "kernel_died": None,
        "setup_error": None,
        "probe_error": None,
        "probe_skipped": None,
        "timings": {},
        "figure_cells": {},
        "missing_packages": [],
    }


def error_entry(cell: int, ename: str, evalue: str, source: str, traceback_text: str = "") -> dict[str, Any]:
    """One entry of run.json's errors: the cell, the exception, the first lines of the cell and the traceback's end.

    Text that is not valid Unicode (a lone surrogate such as ``\\ud800``) is shown escaped.
    """
    lines = escape_invalid_text(source).strip("\n").splitlines()[:3]
    if ename in ("SyntaxError", "IndentationError", "TabError") and cell >= 0:
        evalue = _cell_syntax_error(str(evalue), source)
    return {
        "cell": cell,
        "ename": _cap(escape_invalid_text(str(ename)), 200),
        "evalue": _cap(escape_invalid_text(str(evalue)), 2_000),
        "source_excerpt": _cap("\n".join(lines), 500),
        "traceback": _tail(_ANSI.sub("", escape_invalid_text(traceback_text)), MAX_TRACEBACK_CHARS),
    }


_KERNEL_FILE = re.compile(r"\((?:\d+\.py|<[^>]*>), line (\d+)\)")
"""Where IPython says a cell's syntax error is: its own temporary file name (``3809694872.py``) and a line."""


def _cell_syntax_error(evalue: str, source: str) -> str:
    """A syntax error's message as a student can find it: the line of the cell and its text, not IPython's
    temporary file name (``invalid syntax (3809694872.py, line 2)`` -> ``invalid syntax (line 2 of the cell:
    `print "hi"`)``)."""
    match = _KERNEL_FILE.search(evalue)
    if match is None:
        return evalue
    number = int(match.group(1))
    lines = source.splitlines()
    text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    where = f"line {number} of the cell" + (f": `{text[:200]}`" if text else "")
    return evalue[: match.start()] + f"({where})" + evalue[match.end():]


def escape_invalid_text(text: str) -> str:
    """``text`` with every character UTF-8 cannot encode (lone surrogates) written as its escape (``\\ud800``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _escape_invalid_values(value: Any) -> Any:
    """A JSON-like value with every string passed through ``escape_invalid_text``."""
    if isinstance(value, str):
        return escape_invalid_text(value)
    if isinstance(value, dict):
        return {_escape_invalid_values(k): _escape_invalid_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape_invalid_values(v) for v in value]
    return value


def _pack_escaping_surrogates(message: Any) -> bytes:
    """The kernel's message packer, made to send text holding lone surrogates escaped instead of failing.

    jupyter_client's packer raises UnicodeEncodeError on ``raise ValueError('\\ud800')`` or such a print:
    the kernel then drops the error reply and the cell looks as if it passed.
    """
    from jupyter_client.session import json_packer

    try:
        return json_packer(message)
    except UnicodeEncodeError:
        return json_packer(_escape_invalid_values(message))


def escape_surrogates_in_kernel() -> None:
    """Install ``_pack_escaping_surrogates`` in the running kernel (called by the hidden setup cell)."""
    from IPython import get_ipython

    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        kernel.session.pack = _pack_escaping_surrogates


def limit_output_in_kernel(limit: int) -> None:
    """Make the kernel drop what a cell prints past ``limit`` characters (called by the hidden setup cell).

    Without this, ``while True: print('x' * 10**6)`` grows the kernel (IPython keeps every printed
    string in its output history, and ipykernel buffers what it has not sent yet) until the run dies
    of the memory limit. The cap wraps the streams' ``write`` when each cell starts, outside the
    wrapper IPython installs per cell to record that history. The write that crosses the limit
    still goes out, so the runner sees the flood and stops the cell.
    """
    import sys

    from IPython import get_ipython

    def cap() -> None:
        printed = [0]
        for stream in (sys.stdout, sys.stderr):
            send = stream.write

            def write(text: str, *args: Any, send: Any = send, **kwargs: Any) -> Any:
                if printed[0] > limit:
                    return len(text)
                printed[0] += len(text)
                return send(text, *args, **kwargs)

            stream.write = write  # IPython puts its own writer back when the cell ends

    get_ipython().events.register("pre_run_cell", lambda info: cap())


def show_figures_at_cell_end() -> None:
    """Make the kernel show figures as Jupyter does (called by the hidden setup cell).

    With Jupyter's inline backend every figure still open when a cell ends is displayed and
    closed; without that, a loss curve drawn in one cell and a scatter drawn in the next without
    ``plt.show()`` end up on one figure. Here every open figure is saved (with its description)
    and closed when a cell ends, whatever the cell did. The hook runs on ``post_execute``,
    registered before anything the student's code adds. ``%matplotlib inline`` (or ``%pylab``)
    keeps the saving backend, so ``plt.show()`` figures get their descriptions too.
    """
    from IPython import get_ipython

    from harness.probes.figures import BACKEND, save_open_figures

    def show_open_figures() -> None:
        try:
            save_open_figures()
        except Exception:  # the student's code broke pyplot: the figures are lost, the run goes on quietly
            pass

    shell = get_ipython()
    shell.events.register("post_execute", show_open_figures)

    def enable_matplotlib(gui: str | None = None) -> tuple[str | None, str]:
        import matplotlib

        matplotlib.use(BACKEND, force=True)
        return gui, BACKEND

    shell.enable_matplotlib = enable_matplotlib


def new_figures(folder: Path, seen: set[str]) -> list[str]:
    """The ``figures/<n>.png`` names in ``folder`` that are not in ``seen`` (added to it), in number order."""
    try:
        names = {p.name for p in folder.glob("*.png") if p.stem.isdigit()}
    except OSError:
        return []
    fresh = sorted(names - seen, key=lambda name: int(name.split(".")[0]))
    seen.update(fresh)
    return [f"figures/{name}" for name in fresh]


MAX_SCANNED_FILES = 5_000
"""Files looked at when deciding whether a module that failed to import is part of the submission."""


def missing_packages(errors: list[dict[str, Any]], folders: Sequence[Path]) -> list[str]:
    """Modules the code failed to import (ModuleNotFoundError) that are no file or folder of the submission.

    ``folders`` are searched (with their sub-folders) for ``<name>.py`` or a folder ``<name>``: a
    student's own module that exists but does not import is the student's error; anything else
    is a package the grading environment lacks.
    """
    from harness.environment import missing_module

    wanted = {name for e in errors if (name := missing_module(e.get("ename", ""), e.get("evalue", "")))}
    if not wanted:
        return []
    present: set[str] = set()
    scanned = 0
    for folder in folders:
        try:
            for path in Path(folder).rglob("*"):
                scanned += 1
                if scanned > MAX_SCANNED_FILES:
                    break
                present.add(path.stem if path.suffix == ".py" else path.name)
        except OSError:
            continue
    return sorted(wanted - present)


def invalid_text(source: str) -> str | None:
    """Why a cell's source cannot be sent to the kernel (a lone surrogate: not valid Unicode), or None."""
    try:
        source.encode("utf-8")
    except UnicodeEncodeError as error:
        line = source.count("\n", 0, error.start) + 1
        bad = escape_invalid_text(source[error.start : error.end])
        return (
            f"the cell holds {bad}, a lone surrogate that is not valid text (line {line}), so it could not be run: "
            "remove that character"
        )
    return None


class RecordDescriptors:
    """The runner's record files as descriptors the host opened outside every mount of the sandbox (``--record-fds``).

    Nothing of the student's can reach them: they are not inheritable (the kernel, started with exec, does not get
    them), the runner is undumpable (``/proc/<runner>/fd`` is closed to the kernel, even under the same uid), and no
    path inside the sandbox leads to the files. A script is the exception: it runs inside the runner's own process,
    and can reach them as it could reach a records folder. Each write replaces the whole file: it is truncated first, so a write
    cut short by the sandbox's kill leaves a file that is not valid JSON (the host says so) rather than a mix of two
    records.
    """

    def __init__(self, descriptors: dict[str, int]) -> None:
        """``descriptors``: by file name (``run.json``, ``executed.ipynb``), a descriptor open for writing."""
        for descriptor in descriptors.values():
            os.set_inheritable(descriptor, False)  # bubblewrap handed them on as inheritable: the kernel must not get them
        self.descriptors = descriptors

    def write(self, name: str, data: bytes) -> None:
        """Make the file ``name`` hold ``data`` (and nothing else)."""
        descriptor = self.descriptors[name]
        os.ftruncate(descriptor, 0)
        view = memoryview(data)
        while view:
            written = os.pwrite(descriptor, view, len(data) - len(view))
            view = view[written:]


Records = Path | RecordDescriptors
"""Where run.json and executed.ipynb go: a folder, or the descriptors the host passed in."""


def write_record(records: Records, record: dict[str, Any]) -> None:
    """Write run.json: through the host's descriptor, or into a folder atomically."""
    data = json.dumps(record, indent=1, default=str).encode("utf-8")
    if isinstance(records, RecordDescriptors):
        records.write(RUN_FILE, data)
        return
    records.mkdir(parents=True, exist_ok=True)
    temporary = records / f"{RUN_FILE}.partial"
    temporary.write_bytes(data)
    os.replace(temporary, records / RUN_FILE)


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 10] + " ... [cut]"


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "[cut] ... " + text[-(limit - 10) :]


# --------------------------------------------------------------------------- notebooks


def setup_source(config: dict[str, Any]) -> str:
    """The hidden first cell: bootstrap the kernel before the student's code (leaves no names behind)."""
    return "\n".join(
        [
            "import json as __gb_json, harness.probes.bootstrap as __gb_bootstrap, harness.engines.runner as __gb_runner",
            "__gb_runner.escape_surrogates_in_kernel()",
            f"__gb_runner.limit_output_in_kernel({int(config.get('output_bytes') or DEFAULT_OUTPUT_BYTES)})",
            "__gb_runner.show_figures_at_cell_end()",
            f"__gb_bootstrap.install(__gb_json.loads({json.dumps(json.dumps(config))}))",
            *_draws_lines(config),
            "del __gb_json, __gb_bootstrap, __gb_runner",
        ]
    )


def _draws_lines(config: dict[str, Any]) -> list[str]:
    """Setup lines that record the random draws fed to a network (harness.probes.draws), after the bootstrap."""
    if not config.get("artifacts"):
        return []
    return [
        "import harness.probes.draws as __gb_draws",
        f"__gb_draws.install({json.dumps(str(config['artifacts']))})",
        "del __gb_draws",
    ]


def probe_source(config: dict[str, Any]) -> str:
    """The hidden last cell: run the probe on the kernel's user namespace (``__main__``, out of the student's reach)."""
    return "\n".join(
        [
            "import json as __gb_json, harness.probes.probe as __gb_probe",
            f"__gb_probe.run(__gb_json.loads({json.dumps(json.dumps(config))}))",
            "del __gb_json, __gb_probe",
        ]
    )


def _prepare_jupyter_dirs(scratch: Path) -> None:
    """A kernelspec for this interpreter and private runtime/IPython folders (the sandbox's home may be read-only)."""
    spec = scratch / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    student = kernel_uid()
    if student is not None:  # the student's code runs as the sandbox's second user, out of reach of the records
        argv = [sys.executable, "-P", "-m", "harness.engines.kernel_user", "--uid", str(student), "-f", "{connection_file}"]
    kernel = {
        "argv": argv,
        "display_name": "Python 3 (gradebench)",
        "language": "python",
        "interrupt_mode": "signal",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    os.environ["JUPYTER_PATH"] = str(scratch / "jupyter")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(scratch / "runtime")
    os.environ.setdefault("IPYTHONDIR", str(scratch / "ipython"))
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
    # The kernel must import harness even if the interpreter does not find it on its own.
    package_parent = str(Path(__file__).resolve().parents[2])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_parent not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, package_parent])


def _bounded_client_class() -> type:
    """NotebookClient that bounds what a cell's outputs cost while they arrive (errors are always kept).

    Past MAX_KEPT_OUTPUT_CHARS a cell's outputs are no longer kept. Past ``flood_bytes`` of printed
    text (an output flood) the kernel is interrupted, and killed if the cell still prints
    FLOOD_GRACE_S later (by when the kernel sent the output, not when it is read): nothing is buffered
    beyond the caps, so printing gigabytes is an output flood, not the memory limit of the whole run. A cell
    that neither prints nor ends after the interrupt (it came at a moment the kernel could not act on it, or
    the cell ignores it) is interrupted again after FLOOD_GRACE_S, and its kernel killed after as long again:
    it does not hold the run until its timeout.
    """
    import signal
    import threading

    from nbclient import NotebookClient

    class BoundedClient(NotebookClient):
        def __init__(self, *args: Any, flood_bytes: int = DEFAULT_OUTPUT_BYTES, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.flood_bytes = flood_bytes
            self.kept_chars: dict[int, int] = {}
            self.printed_bytes: dict[int, int] = {}
            self.cut_cells: set[int] = set()
            self.flooded: dict[int, float] = {}
            """Cells stopped for an output flood -> when the kernel was interrupted (``time.time()``)."""
            self.last_received: dict[int, float] = {}
            """Flooded cells -> when their last output message was received (``time.monotonic()``)."""
            self.flood_killed: dict[int, str] = {}
            """Cells whose kernel was killed after the flood's interrupt -> why (for the report)."""
            self.running: int | None = None
            """The cell executing now (the runner sets it around each cell)."""
            self.running_cell: Any = None
            """That cell itself: nbclient notes in its metadata when the kernel replied to it (``record_timing``),
            before it waits for the last of the cell's output."""

        def _signal_kernel(self, number: int) -> None:
            process = getattr(getattr(self.km, "provisioner", None), "process", None)
            if process is not None and process.poll() is None:
                os.kill(process.pid, number)

        def _after_grace(self, cell_index: int, again: bool) -> None:
            """In FLOOD_GRACE_S, if the flooded cell is still running and its kernel alive: interrupt it once more
            (``again``), else kill the kernel."""

            def overdue() -> None:
                if self.running != cell_index or cell_index in self.flood_killed:
                    return  # it ended (or is being killed for printing on)
                execution = (self.running_cell or {}).get("metadata", {}).get("execution", {})
                if "shell.execute_reply" in execution:
                    # the kernel has ended the cell; nbclient is only waiting for the last of its output (a
                    # flood on a loaded machine can lose the kernel's "idle" message: it waits iopub_timeout)
                    return
                if time.monotonic() - self.last_received.get(cell_index, -math.inf) < FLOOD_GRACE_S:
                    # still reading what the kernel sent before it stopped (a loaded machine): the cell's end may
                    # be queued behind it; judged again later, and output() kills it if it really prints on
                    self._after_grace(cell_index, again)
                    return
                if again:
                    self._signal_kernel(signal.SIGINT)
                    self._after_grace(cell_index, again=False)
                else:
                    self.flood_killed[cell_index] = "the cell did not stop after an output flood"
                    self._signal_kernel(signal.SIGKILL)

            timer = threading.Timer(FLOOD_GRACE_S, overdue)
            timer.daemon = True
            timer.start()

        def output(self, outs: list, msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
            if msg.get("msg_type") == "error":
                return super().output(outs, msg, display_id, cell_index)
            content = msg.get("content", {})
            data = content.get("data", {})
            text = len(str(content.get("text", ""))) + sum(len(str(v)) for k, v in data.items() if k.startswith("text/"))
            printed = self.printed_bytes.get(cell_index, 0) + text
            self.printed_bytes[cell_index] = printed
            if cell_index in self.flooded:
                self.last_received[cell_index] = time.monotonic()
                # by when the kernel sent it, not when it is read: on a loaded machine the messages it sent before
                # the interrupt are still being read seconds later
                if cell_index not in self.flood_killed and _sent_at(msg) - self.flooded[cell_index] > FLOOD_GRACE_S:
                    self.flood_killed[cell_index] = "it kept printing after an output flood"
                    self._signal_kernel(signal.SIGKILL)
                return None
            if printed > self.flood_bytes:
                self.flooded[cell_index] = time.time()
                self.cut_cells.add(cell_index)
                self._signal_kernel(signal.SIGINT)
                self._after_grace(cell_index, again=True)
                return None
            size = text + sum(len(str(v)) for k, v in data.items() if not k.startswith("text/"))
            kept = self.kept_chars.get(cell_index, 0) + size
            if kept > MAX_KEPT_OUTPUT_CHARS:
                self.cut_cells.add(cell_index)
                return None
            self.kept_chars[cell_index] = kept
            return super().output(outs, msg, display_id, cell_index)

    return BoundedClient


def _sent_at(msg: dict[str, Any]) -> float:
    """When the kernel sent ``msg`` (its header's date, as ``time.time()``); now, when it does not say."""
    from datetime import datetime

    date = msg.get("header", {}).get("date")
    if isinstance(date, str):
        try:
            date = datetime.fromisoformat(date)
        except ValueError:
            date = None
    return date.timestamp() if isinstance(date, datetime) and date.tzinfo is not None else time.time()


def run_notebook(
    source: Path, config: dict[str, Any], artifacts: Path, records: Records | None = None, hold: bool = False
) -> dict[str, Any]:
    """Execute a notebook's code cells in a fresh kernel with setup and probe cells around them; run.json and
    executed.ipynb go to ``records`` (default ``artifacts``). ``hold``: after the setup cell, wait for the host's go
    (:func:`wait_for_go`) before the first cell of the student's."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from harness.sandbox.supervise import format_bytes

    records = records or artifacts
    started = time.monotonic()
    record = new_record(source.as_posix(), "notebook")
    source = source.resolve()
    try:
        notebook = nbformat.read(source, as_version=4)
        code = [cell for cell in notebook.cells if cell.get("cell_type") == "code"]
    except Exception as error:
        message = f"{source.name} could not be read as a notebook: {type(error).__name__}: {error}"
        record["errors"].append(error_entry(-1, "NotebookError", message, ""))
        record["probe_skipped"] = "the notebook could not be read"
        write_record(records, record)
        return record
    record["cells_total"] = len(code)
    write_record(records, record)

    cells = [nbformat.v4.new_code_cell(setup_source(config))]
    cells += [nbformat.v4.new_code_cell(str(cell.get("source", ""))) for cell in code]
    cells.append(nbformat.v4.new_code_cell(probe_source(config)))
    runnable = nbformat.v4.new_notebook(cells=cells)

    bounded_client = _bounded_client_class()
    cell_timeout = int(config["cell_timeout_s"]) if config.get("cell_timeout_s") else None
    timed_out: list[int] = []

    def note_timeout(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        if execute_reply.get("content", {}).get("ename") == TIMEOUT_ENAME:
            timed_out.append(cell_index)

    client = bounded_client(
        runnable,
        kernel_name=KERNEL_NAME,
        timeout=cell_timeout,
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": "", "traceback": []},
        on_cell_error=note_timeout,
        startup_timeout=int(config.get("kernel_startup_timeout_s", 120)),
        shutdown_kernel="immediate",
        record_timing=True,  # the kernel's reply to a cell is noted as it comes (BoundedClient); left out of the files
        iopub_timeout=4,
        resources={"metadata": {"path": str(source.parent)}},
        flood_bytes=int(config.get("output_bytes") or DEFAULT_OUTPUT_BYTES),
    )

    def execute(cell: Any, index: int, timeout: int | None, store_history: bool = True) -> str:
        """Run one cell: ``ok`` (errors included), ``timeout`` (interrupted) or ``dead`` (the kernel died)."""
        client.timeout = timeout
        before = len(timed_out)
        client.running, client.running_cell = index, cell
        try:
            client.execute_cell(cell, index, store_history=store_history)
        except DeadKernelError:
            return "dead"
        except CellTimeoutError:  # no reply at all, not even to the interrupt
            return "timeout"
        finally:
            client.running, client.running_cell = None, None
        return "timeout" if len(timed_out) > before else "ok"

    figures = artifacts / "figures"
    budget = [MAX_NOTEBOOK_OUTPUT_CHARS]
    timings = record["timings"]
    try:
        with client.setup_kernel(cwd=str(source.parent)):
            timings["kernel_start_s"] = round(time.monotonic() - started, 3)
            mark = time.monotonic()
            outcome = execute(cells[0], 0, int(config.get("probe_timeout_s", 120)), store_history=False)
            if outcome != "ok":
                record["setup_error"] = f"the setup cell ended with: {outcome}"
            for output in cells[0].get("outputs", []):
                if output.get("output_type") == "error":
                    record["setup_error"] = _tail(_ANSI.sub("", "\n".join(output.get("traceback", []))), 8_000)
            timings["setup_s"] = round(time.monotonic() - mark, 3)
            stop_reason = "the kernel died during the setup" if outcome == "dead" else None
            if hold:
                write_record(records, record)  # the host sees the run is set up and waiting
                mark = time.monotonic()
                if not wait_for_go():
                    stop_reason = stop_reason or HELD_STOP
                timings["held_s"] = round(time.monotonic() - mark, 3)

            mark = time.monotonic()
            seen_figures = {p.name for p in figures.glob("*.png")}
            for index, cell in enumerate(cells[1:-1]):
                if stop_reason:
                    break
                cell_started = time.monotonic()
                record["running_cell"] = index  # left in run.json if the sandbox kills the run during this cell
                write_record(records, record)
                invalid = invalid_text(cell.source)
                if invalid:  # jupyter_client cannot even send it; Python could not compile it either
                    record["errors"].append(error_entry(index, "UnicodeError", invalid, cell.source))
                    cell.source = ""
                    outcome = "ok"
                else:
                    outcome = execute(cell, index + 1, cell_timeout)
                record["cells_run"] = index + 1
                record["running_cell"] = None
                flooded = index + 1 in client.flooded
                if flooded:
                    limit = format_bytes(client.flood_bytes)
                    message = f"printed more than {limit} of output (an output flood) and was stopped"
                    record["outputs_flooded"].append(index)
                    record["errors"].append(error_entry(index, "OutputFlood", message, cell.source))
                if flooded and outcome == "dead":
                    why = client.flood_killed.get(index + 1, "it kept printing after an output flood")
                    message = f"the kernel was stopped because {why}"
                    record["kernel_died"] = {"cell": index, "message": message, "signal": None}
                    stop_reason = f"the kernel was stopped after an output flood in cell {index}"
                elif outcome == "timeout":
                    if record["timed_out_cell"] is None:
                        record["timed_out_cell"] = index
                    message = f"the cell ran longer than {cell_timeout} s and was interrupted"
                    record["errors"].append(error_entry(index, "TimeoutError", message, cell.source))
                    recovery = int(config.get("recovery_timeout_s", RECOVERY_TIMEOUT_S))
                    if execute(nbformat.v4.new_code_cell("pass"), 0, recovery, store_history=False) != "ok":
                        stop_reason = f"the kernel did not recover after cell {index} was interrupted"
                elif outcome == "dead":
                    message, signal_name = _kernel_death(client)
                    record["kernel_died"] = {"cell": index, "message": message, "signal": signal_name}
                    record["errors"].append(error_entry(index, "DeadKernelError", message, cell.source))
                    stop_reason = f"the kernel died in cell {index}"
                record["cell_seconds"].append(round(time.monotonic() - cell_started, 3))
                if index + 1 in client.cut_cells:
                    record["outputs_cut"].append(index)
                _collect_outputs(cell, index, record, figures, budget, interrupted=outcome == "timeout" or flooded)
                for name in new_figures(figures, seen_figures):  # shown by plt.show(), a display or the cell's end
                    record["figure_cells"][name] = index
                write_record(records, record)
            timings["cells_s"] = round(time.monotonic() - mark, 3)

            mark = time.monotonic()
            if stop_reason:
                record["probe_skipped"] = stop_reason
            else:
                probe_timeout = int(config.get("probe_timeout_s", 120))
                probe = cells[-1]
                outcome = execute(probe, len(cells) - 1, probe_timeout, store_history=False)
                if outcome == "timeout":
                    record["probe_error"] = f"the probe took longer than {probe_timeout} s"
                elif outcome == "dead":
                    record["probe_error"] = "the kernel died while the probe ran"
                for output in probe.get("outputs", []):
                    if output.get("output_type") == "error" and outcome == "ok":
                        text = "\n".join(output.get("traceback", []))
                        text = text or f"{output.get('ename')}: {output.get('evalue')}"
                        record["probe_error"] = _tail(_ANSI.sub("", text), 8_000)
            timings["probe_s"] = round(time.monotonic() - mark, 3)
    except Exception as error:  # the kernel could not start, or nbclient failed: a harness fault
        record["setup_error"] = _tail(escape_invalid_text(traceback.format_exc()), 8_000)
        running = record["running_cell"]
        if isinstance(running, int) and running >= 0:  # that cell did not run to its end: it failed
            message = f"the cell could not be run: {type(error).__name__}: {error}"
            record["errors"].append(error_entry(running, "RunError", message, cells[running + 1].source))
        if record["probe_skipped"] is None and record["probe_error"] is None:
            record["probe_skipped"] = f"the notebook could not be run: {type(error).__name__}: {error}"[:2_000]

    _write_executed(records, cells[1:-1])
    record["missing_packages"] = missing_packages(record["errors"], [Path.cwd(), source.parent])
    timings["total_s"] = round(time.monotonic() - started, 3)
    write_record(records, record)
    return record


SIGNAL_CAUSES = {
    "SIGSEGV": "a segmentation fault",
    "SIGBUS": "a bus error",
    "SIGABRT": "an abort",
    "SIGFPE": "an arithmetic fault",
    "SIGILL": "an illegal instruction",
}
"""What each signal that kills a kernel usually means, for the message a student reads."""


def describe_signal(number: int) -> tuple[str, str]:
    """The signal's name and ``killed by NAME (cause)`` for a signal number."""
    import signal

    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}", f"killed by signal {number}"
    cause = SIGNAL_CAUSES.get(name)
    return name, f"killed by {name}" + (f" ({cause})" if cause else "")


def _kernel_death(client: Any) -> tuple[str, str | None]:
    """Why the kernel died, from its exit status: the message for its cell, and the signal's name (or None)."""
    process = getattr(getattr(getattr(client, "km", None), "provisioner", None), "process", None)
    code = None
    if process is not None:
        try:
            code = process.wait(timeout=2)
        except Exception:
            code = process.poll()
    if isinstance(code, int) and code < 0:
        name, killed = describe_signal(-code)
        return f"the kernel was {killed}", name
    if isinstance(code, int):
        return f"the kernel exited with status {code} (exit(), os._exit() or a crash)", None
    return "the kernel died (out of memory, a crash, or exit())", None


def _collect_outputs(
    cell: Any, index: int, record: dict[str, Any], figures: Path, budget: list[int], interrupted: bool = False
) -> None:
    """Record the cell's errors, save its PNG figures, and cut its text outputs for executed.ipynb.

    ``interrupted``: the cell was stopped for running too long; its KeyboardInterrupt is that timeout.
    """
    from harness.probes.figures import write_png

    kept = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "error":
            if interrupted and output.get("ename") == "KeyboardInterrupt":
                continue
            if len(record["errors"]) < MAX_ERRORS:
                record["errors"].append(
                    error_entry(index, output.get("ename", "Error"), output.get("evalue", ""), cell.source,
                                "\n".join(output.get("traceback", [])))
                )
            kept.append(output)
            continue
        data = output.get("data", {}) if kind in ("display_data", "execute_result") else {}
        if "image/png" in data:
            try:
                png = base64.b64decode(str(data["image/png"]), validate=False)
            except Exception:
                png = b""
            path = write_png(figures, png)
            text = f"[figure saved as figures/{path.name}]" if path else "[figure dropped]"
            output = {"output_type": "stream", "name": "stdout", "text": text + "\n"}
        elif kind in ("display_data", "execute_result"):
            plain = data.get("text/plain", "")
            output = {"output_type": "stream", "name": "stdout", "text": _cap(str(plain), MAX_CELL_OUTPUT_CHARS) + "\n"}
        elif kind == "stream":
            output = {"output_type": "stream", "name": output.get("name", "stdout"),
                      "text": _tail(str(output.get("text", "")), MAX_CELL_OUTPUT_CHARS)}
        else:
            continue
        size = len(output.get("text", ""))
        if budget[0] - size < 0:
            continue
        budget[0] -= size
        kept.append(output)
    import nbformat

    cell["outputs"] = [nbformat.from_dict(o) for o in kept]


def _write_executed(records: Records, cells: list[Any]) -> None:
    """Save the student's cells with their (cut) outputs, for a TA to read."""
    import nbformat

    for cell in cells:  # nbclient's timestamps (``record_timing``) are the runner's, not the student's
        cell.get("metadata", {}).pop("execution", None)
    notebook = nbformat.v4.new_notebook(cells=cells)
    try:
        if isinstance(records, RecordDescriptors):
            records.write(EXECUTED_FILE, nbformat.writes(notebook).encode("utf-8"))
        else:
            nbformat.write(notebook, str(records / EXECUTED_FILE))
    except Exception:  # a report aid only
        pass


# --------------------------------------------------------------------------- scripts


def run_script(
    source: Path, config: dict[str, Any], artifacts: Path, records: Records | None = None, hold: bool = False
) -> dict[str, Any]:
    """Run a script as ``__main__`` after the bootstrap, then probe its globals (even after an exception).
    ``hold``: after the bootstrap, wait for the host's go (:func:`wait_for_go`) before the script runs."""
    records = records or artifacts
    started = time.monotonic()
    record = new_record(source.as_posix(), "script")
    source = source.resolve()
    record["cells_total"] = 1
    write_record(records, record)
    try:
        text = source.read_text(encoding="utf-8")
    except Exception as error:
        record["errors"].append(error_entry(-1, type(error).__name__, f"{source.name} could not be read: {error}", ""))
        record["probe_skipped"] = "the script could not be read"
        write_record(records, record)
        return record

    import harness.probes.bootstrap as bootstrap

    mark = time.monotonic()
    try:
        bootstrap.install(config)
        if config.get("artifacts"):
            import harness.probes.draws as draws

            draws.install(config["artifacts"])
    except Exception:
        record["setup_error"] = _tail(traceback.format_exc(), 8_000)
    record["timings"]["setup_s"] = round(time.monotonic() - mark, 3)
    if hold:
        write_record(records, record)  # the host sees the run is set up and waiting
        mark = time.monotonic()
        went = wait_for_go()
        record["timings"]["held_s"] = round(time.monotonic() - mark, 3)
        if not went:
            record["probe_skipped"] = HELD_STOP
            write_record(records, record)
            return record

    folder = source.parent.resolve()
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    sys.argv = [str(source.name)]
    module = types.ModuleType("__main__")
    module.__file__ = str(folder / source.name)
    module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    saved_main = sys.modules.get("__main__")
    sys.modules["__main__"] = module

    mark = time.monotonic()
    record["cells_run"] = 1
    record["running_cell"] = -1
    write_record(records, record)
    seconds = float(config.get("cell_timeout_s") or 0)
    flood_bytes = int(config.get("output_bytes") or DEFAULT_OUTPUT_BYTES)
    from harness.sandbox.supervise import format_bytes

    try:
        code = compile(text, str(folder / source.name), "exec")
        with _script_time_limit(seconds), _script_output_limit(flood_bytes):
            exec(code, module.__dict__)
    except SystemExit as error:
        if error.code not in (None, 0):
            record["errors"].append(error_entry(-1, "SystemExit", f"the script exited with status {error.code}", text))
    except OutputFlood:
        message = f"printed more than {format_bytes(flood_bytes)} of output (an output flood) and was stopped"
        record["outputs_flooded"].append(-1)
        record["errors"].append(error_entry(-1, "OutputFlood", message, text))
    except ScriptTimeout:
        record["timed_out_cell"] = -1
        message = f"the script ran longer than {seconds:g} s and was stopped"
        record["errors"].append(error_entry(-1, "TimeoutError", message, text))
    except BaseException as error:  # the student's exception, whatever it is, is recorded
        record["errors"].append(
            error_entry(-1, type(error).__name__, str(error), _failing_line(error, text), _student_traceback(error))
        )
    from harness.probes.figures import save_open_figures

    try:  # the script's end shows what is still open, as its last plt.show() would
        save_open_figures()
    except Exception:
        pass
    for name in new_figures(artifacts / "figures", set()):
        record["figure_cells"][name] = -1
    record["running_cell"] = None
    record["cell_seconds"] = [round(time.monotonic() - mark, 3)]
    record["timings"]["cells_s"] = record["cell_seconds"][0]
    write_record(records, record)

    mark = time.monotonic()
    try:
        import harness.probes.probe as probe

        probe.run(config, module.__dict__)
    except BaseException:
        record["probe_error"] = _tail(traceback.format_exc(), 8_000)
    finally:
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
    record["timings"]["probe_s"] = round(time.monotonic() - mark, 3)
    record["timings"]["total_s"] = round(time.monotonic() - started, 3)
    record["missing_packages"] = missing_packages(record["errors"], [folder])
    write_record(records, record)
    return record


def _student_traceback(error: BaseException) -> str:
    """The traceback from the script's own frames on (the runner's exec frame left out)."""
    tb = error.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


def _failing_line(error: BaseException, text: str) -> str:
    """The script line where the error surfaced (for the excerpt), else the script's first lines."""
    lineno = getattr(error, "lineno", None) if isinstance(error, SyntaxError) else None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == "__main__" and tb.tb_frame.f_code.co_filename.endswith(".py"):
            lineno = tb.tb_lineno
        tb = tb.tb_next
    lines = text.splitlines()
    if lineno and 0 < lineno <= len(lines):
        return f"line {lineno}: {lines[lineno - 1].strip()}"
    return text


class _CountingStream:
    """A text stream that raises OutputFlood once everything written through the pair passed ``limit``."""

    def __init__(self, stream: Any, printed: list[int], limit: int) -> None:
        self._stream, self._printed, self._limit = stream, printed, limit

    def write(self, text: str) -> int:
        self._printed[0] += len(text)
        if self._printed[0] > self._limit:
            raise OutputFlood()
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _script_output_limit:
    """Stop a script (OutputFlood) when it prints more than ``limit`` characters to stdout and stderr together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __enter__(self) -> None:
        printed = [0]
        self.saved = sys.stdout, sys.stderr
        sys.stdout = _CountingStream(sys.stdout, printed, self.limit)
        sys.stderr = _CountingStream(sys.stderr, printed, self.limit)

    def __exit__(self, *exc: Any) -> None:
        sys.stdout, sys.stderr = self.saved


class _script_time_limit:
    """Raise ScriptTimeout in the main thread after ``seconds`` (0: no limit)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        import signal

        if self.seconds > 0:
            def expire(signum: int, frame: Any) -> None:
                raise ScriptTimeout()

            self.previous = signal.signal(signal.SIGALRM, expire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self.seconds > 0:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)


# --------------------------------------------------------------------------- entry point


HELD_STOP = "the grader stopped before the submission's code was started"
"""Why a held run ran nothing: its gate closed without a go (the batch was stopped)."""


def wait_for_go() -> bool:
    """Block until the host's go, one byte on stdin (``harness.sandbox.base.Gate``); False at end-of-file: the
    grader closed the gate or died, and no code of the student's may run. Stdin is ``/dev/null`` afterwards, as
    for a run that is not held (a script reads it in this process)."""
    try:
        went = bool(os.read(0, 1))
    except OSError:
        went = False
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return went


def kernel_uid() -> int | None:
    """The uid the kernel runs as when the sandbox gives the run a second user (``KERNEL_UID_ENV``); else None."""
    from harness.sandbox.base import KERNEL_UID_ENV

    value = os.environ.get(KERNEL_UID_ENV, "")
    return int(value) if value.isdigit() and int(value) != os.getuid() else None


def run(
    kind: str, source: Path, config: dict[str, Any], artifacts: Path, records: Records | None = None,
    hold: bool = False,
) -> dict[str, Any]:
    """Run one source of the given kind; returns the run.json record (also written to ``records``: a folder, by
    default ``artifacts``, or the host's descriptors). ``hold``: set up, then wait for the host's go before the
    source runs."""
    records = records or artifacts
    if isinstance(records, Path):
        records.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    if kernel_uid() is None:  # else the folder would be the runner's: the kernel's figure hook makes it
        (artifacts / "figures").mkdir(exist_ok=True)
    config = {**config, "artifacts": str(artifacts.resolve())}
    scratch = Path(tempfile.mkdtemp(prefix="gradebench-runner-"))
    os.environ.setdefault("MPLCONFIGDIR", str(scratch / "matplotlib"))
    from harness.probes.figures import BACKEND, FIGURES_ENV

    os.environ.update(OFFLINE_ENV)
    os.environ["MPLBACKEND"] = BACKEND
    os.environ[FIGURES_ENV] = str(artifacts.resolve() / "figures")
    if kind == "notebook":
        _prepare_jupyter_dirs(scratch)
        return run_notebook(source, config, artifacts, records, hold)
    if kind == "script":
        if kernel_uid() is not None:
            # a script runs in this process: it gets no right to switch user (its records stay writable to it)
            from harness.engines.kernel_user import drop_capabilities

            drop_capabilities()
        return run_script(source, config, artifacts, records, hold)
    raise ValueError(f"unknown kind {kind!r}; known: notebook, script")


PR_SET_DUMPABLE = 4


def make_undumpable() -> None:
    """Forbid processes of the same user to ptrace this one or read its /proc/<pid>/mem and environ.

    Where the sandbox has one user only (not root), student code in the kernel runs as the runner's user;
    without this it could rewrite the runner's memory and forge run.json (as root the kernel runs as a user
    of its own, ``kernel_uid``, and cannot anyway). The kernel the runner starts is dumpable again after its
    exec (it holds only student state), and so is a script, which runs inside this process anyway.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; exit status 0 unless the runner itself failed."""
    make_undumpable()  # first, before any student code starts
    parser = argparse.ArgumentParser(prog="python -m harness.engines.runner", description=__doc__.splitlines()[0])
    parser.add_argument("--kind", required=True, choices=("notebook", "script"))
    parser.add_argument("--source", required=True, help="notebook or script, relative to the working directory")
    parser.add_argument("--config", required=True, help="the run's JSON config, written by the engine")
    parser.add_argument("--artifacts", required=True, help="folder for probe.json, tensors and figures")
    parser.add_argument("--records", help="folder to write run.json and executed.ipynb (default: --artifacts)")
    parser.add_argument("--record-fds", help="RUN,EXECUTED: descriptors (opened by the host) to write run.json and "
                        "executed.ipynb through, instead of a folder")
    parser.add_argument("--hold", action="store_true", help="after the setup, wait for one byte on stdin (the go)")
    options = parser.parse_args(argv)
    records: Records | None = Path(options.records) if options.records else None
    if options.record_fds:  # first: no descriptor may outlive this line as inheritable
        numbers = [int(n) for n in options.record_fds.split(",")]
        records = RecordDescriptors(dict(zip((RUN_FILE, EXECUTED_FILE), numbers, strict=True)))
    # checked against the contract once, here; the runner and the probe read it as plain JSON below
    config = RunnerConfig.from_json(json.loads(Path(options.config).read_text(encoding="utf-8"))).to_json()
    run(options.kind, Path(options.source), config, Path(options.artifacts), records, options.hold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
