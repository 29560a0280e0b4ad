"""Recompute a student's model's outputs in a second, clean sandboxed process (for classes the host cannot build).

Where the task leaves the network to the student, the host has no class to load the exported weights into,
and the predictions the student's run exported would have to be taken on trust. Instead:

1. ``definitions`` keeps, from the task's notebook or script, only what defines things: imports, class and
   function definitions, and assignments of literal constants (``HIDDEN = 64``), in order; never a line
   that trains, loads data or touches the grader (found by ``ast`` on the host: nothing is run here);
2. ``Rebuilder`` asks ``harness.probes.rebuild`` in a second sandbox (the same sandbox and limits, no
   network, a fresh copy of the submission's files, not the workspace the run left), in a fresh process
   forked for that rebuild alone (``RebuildServer``: one sandbox per submission, torch imported once): it
   executes those definitions, builds the recorded class with the constructor arguments the construction hook
   recorded (a module among them is built first, from its own recorded construction), loads the exported
   weights, runs the host's evaluation images, and writes its outputs;
3. ``harness.checks.verify`` believes the exported predictions only when they agree with those outputs.

A rebuild's result depends only on what goes into it (:func:`rebuild_key`: the definitions, the class and its
constructor record, the weights, the evaluation images, the limits, the submission's files and the probe's
code), so it is kept under that key in the output folder (``rebuilds/``, :data:`CACHE_FOLDER`): rescoring the
same runs after a rubric edit rebuilds nothing.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import io as bytes_io
import json
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from harness.models import Limits, Submission
from harness.syntax import parse_or_none

REBUILD_WALL_S = 120.0
"""Seconds the rebuild may take at most (the run's own wall limit when lower)."""

MAX_OUTPUT_BYTES = 512 * 1024**2
"""An outputs file bigger than this is not loaded."""

CACHE_FOLDER = "rebuilds"
"""Folder of an output folder where rebuilt outputs are kept by :func:`rebuild_key` (``<key>.pt``, and
``<key>.json`` for a model the rebuild itself said it could not build)."""

_MAGIC = re.compile(r"^\s*[%!]")
"""IPython magics and shell escapes (``%matplotlib inline``, ``!pip install``): not Python, dropped."""


def definitions(code_blocks: list[str]) -> str:
    """The definitions of ``code_blocks`` (a script, or a notebook's code cells in order) as one module's text.

    A block that does not parse (after dropping magics) is skipped whole. Kept: ``import``, ``from ...
    import``, ``class`` and ``def`` (with their decorators), and assignments of literal values to plain
    names. Everything else (calls, loops, ``if __name__ == "__main__":``) is left out.
    """
    kept: list[str] = []
    for block in code_blocks:
        text = "\n".join("" if _MAGIC.match(line) else line for line in block.splitlines())
        tree = parse_or_none(text)
        if tree is None:
            continue
        for statement in tree.body:
            if isinstance(statement, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                kept.append(ast.unparse(statement))
            elif _literal_assignment(statement):
                kept.append(ast.unparse(statement))
    return "\n\n".join(kept) + "\n"


def _literal_assignment(statement: ast.stmt) -> bool:
    """``NAME = <literal>`` (or annotated): a constant a class may read, computed by nothing."""
    if isinstance(statement, ast.Assign):
        targets, value = statement.targets, statement.value
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        targets, value = [statement.target], statement.value
    else:
        return False
    if not all(isinstance(t, ast.Name) for t in targets):
        return False
    try:
        ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def source_blocks(path: Path) -> list[str]:
    """The code of a notebook (its code cells) or a script, as ``definitions`` takes it; empty if unreadable."""
    try:
        if path.suffix.lower() == ".ipynb":
            import nbformat

            notebook = nbformat.read(str(path), as_version=4)
            return [str(cell.get("source", "")) for cell in notebook.cells if cell.get("cell_type") == "code"]
        return [path.read_text(encoding="utf-8")]
    except Exception:
        return []


@dataclass(frozen=True)
class Rebuilder:
    """Rebuilds the models of one source of one submission in a clean sandbox (``__call__``)."""

    sandbox: Any
    """The sandbox the student's run used (``harness.sandbox.Sandbox``)."""
    submission: Submission
    """The submission: a fresh copy of its files is the rebuild's workspace (a class may import a helper module)."""
    source: str
    """The notebook or script whose definitions are kept, relative to the submission."""
    folder: Path
    """Host folder for the rebuild's files (emptied first) when it has no ``server``."""
    limits: Limits
    """The run's limits; the wall limit is cut to ``REBUILD_WALL_S``."""
    cache: Path | None = None
    """Folder where results are kept by :func:`rebuild_key` and looked up first (``<out>/rebuilds``); None: none
    kept, every call rebuilds."""
    server: RebuildServer | None = None
    """The sandboxed process serving this submission's rebuilds (shared by its tasks' rebuilders, closed by their
    owner); None: each call starts and ends its own, in ``folder``."""

    def __call__(self, class_name: str, constructor: Any, state: Any, inputs: torch.Tensor) -> torch.Tensor | str:
        """The outputs (N, D) of a new ``class_name(*args, **kwargs)`` holding ``state``, on ``inputs``; or why the
        model could not be built there (a sentence for the report).

        ``constructor`` is the probe's record (``{"args", "kwargs"}``); without one (arguments that were no plain
        values, or a record that leaves it out) the class is built without arguments.
        """
        unrecorded = not (isinstance(constructor, dict) and isinstance(constructor.get("args"), list)
                          and isinstance(constructor.get("kwargs"), dict))
        if unrecorded:
            constructor = {"args": [], "kwargs": {}}
        if not isinstance(state, dict) or not state:
            return "its weights were not exported"
        weights = {k: v.detach().clone() for k, v in state.items() if isinstance(v, torch.Tensor)}
        code = definitions(source_blocks(self.submission.root / self.source))
        request = {"class_name": class_name, "args": constructor["args"], "kwargs": constructor["kwargs"]}
        limits = replace(self.limits, wall_s=min(self.limits.wall_s, REBUILD_WALL_S), cell_timeout_s=None, gpu=False)
        why = ("its constructor's arguments were not plain values (or modules built from plain values) the grader "
               "could record, and ") if unrecorded else ""
        key = rebuild_key(code, request, weights, inputs, limits, self.submission.content_hash)
        kept = self._cached(key)
        if kept is not None:
            return kept if isinstance(kept, torch.Tensor) else why + kept
        server = self.server or RebuildServer(self.sandbox, self.submission, self.folder, self.limits)
        try:
            out, unfinished = server.ask(self.source, code, request, weights, inputs, limits.wall_s)
        finally:
            if self.server is None:
                server.close()
        outputs = out / "outputs.pt"
        if outputs.is_file() and not outputs.is_symlink() and outputs.stat().st_size <= MAX_OUTPUT_BYTES:
            try:
                value = torch.load(outputs, map_location="cpu", weights_only=True)
            except Exception as error:
                return f"its outputs could not be read back ({type(error).__name__})"
            if isinstance(value, torch.Tensor):
                rebuilt = value.float()
                self._keep(key, rebuilt)
                return rebuilt
        said = _result_error(out / "result.json")
        if said:  # the definitions themselves failed (a class that raises, a missing name): the same every time
            self._keep(key, said)
        return why + (said or f"the rebuild did not finish: it {unfinished or 'wrote no outputs'}")

    def _cached(self, key: str) -> torch.Tensor | str | None:
        """The outputs (or the rebuild's own reason) kept under ``key``; None when none are (or unreadable)."""
        if self.cache is None:
            return None
        try:
            if (self.cache / f"{key}.pt").is_file():
                value = torch.load(self.cache / f"{key}.pt", map_location="cpu", weights_only=True)
                return value if isinstance(value, torch.Tensor) else None
            if (self.cache / f"{key}.json").is_file():
                said = json.loads((self.cache / f"{key}.json").read_text(encoding="utf-8")).get("error")
                return said if isinstance(said, str) and said else None
        except Exception:  # a damaged entry is rebuilt
            return None
        return None

    def _keep(self, key: str, value: torch.Tensor | str) -> None:
        """Keep ``value`` (written on the host, from what it read back) under ``key``, when there is a cache."""
        from harness.data.formats import atomic_write_bytes

        if self.cache is None:
            return
        try:
            if isinstance(value, torch.Tensor):
                buffer = bytes_io.BytesIO()
                torch.save(value.contiguous(), buffer)
                atomic_write_bytes(self.cache / f"{key}.pt", buffer.getvalue())
            else:
                atomic_write_bytes(self.cache / f"{key}.json", json.dumps({"error": value}).encode("utf-8"))
        except OSError:  # a full disk costs a rebuild next time, never a grade
            pass


SERVER_WALL_S = 4 * REBUILD_WALL_S
"""Seconds one serving process may live; a request that could run past it goes to a new one."""

POLL_S = 0.02
"""How often the host looks for a served rebuild's ``done`` file."""


class RebuildServer:
    """The second, clean sandbox of one submission's rebuilds: ``harness.probes.rebuild --serve``, started at the
    first :meth:`ask`, imports torch once and forks a fresh process for each rebuild (one per task's model, five
    in a submission of five scripts), so each rebuild still starts clean and the import is paid once.

    Its workspace is a fresh copy of the submission's files, made when it starts; ``folder/io/in/<n>`` holds the
    host's request ``n``, ``folder/io/out/<n>`` what the rebuild wrote. A sandbox that cannot hold a run open
    (no ``holds``) gets one process per request, its request on stdin. :meth:`close` ends it.
    """

    def __init__(self, sandbox: Any, submission: Submission, folder: Path, limits: Limits) -> None:
        self.sandbox, self.submission, self.folder, self.limits = sandbox, submission, folder, limits
        self._serving = bool(getattr(sandbox, "holds", False))
        self._count = 0
        self._channel: Any = None
        self._thread: threading.Thread | None = None
        self._ended: list[Any] = []  # the SandboxResult of the process, or what running it raised
        self._since = 0.0
        self._io = self._workspace = folder

    def ask(self, source: str, code: str, request: dict[str, Any], weights: dict[str, torch.Tensor],
            inputs: torch.Tensor, wall_s: float) -> tuple[Path, str]:
        """Rebuild once: the folder the rebuild wrote into (``outputs.pt`` or ``result.json``), and, when it did not
        finish, how it ended (``"timed out after 2 min"``), else ""."""
        from harness.sandbox.supervise import format_seconds

        if self._thread is not None and (
            not self._thread.is_alive() or time.monotonic() - self._since + wall_s > SERVER_WALL_S
        ):
            self.close()
        fresh = self._thread is None
        if fresh:
            self._prepare()
        name = str(self._count)
        self._count += 1
        folder = self._io / "in" / name
        folder.mkdir(parents=True)
        (folder / "definitions.py").write_text(code, encoding="utf-8")
        (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
        torch.save(weights, folder / "weights.pt")
        torch.save(inputs.contiguous(), folder / "inputs.pt")
        # in the source's folder, as the run was: a class defined in a helper module beside it (``from common
        # import Classifier``) imports from there (harness.probes.rebuild puts the working folder on sys.path)
        where = (self._workspace / source).parent
        (folder / "cwd").write_text(str(where.relative_to(self._workspace)) if where.is_dir() else ".")
        out = self._io / "out" / name
        if not self._serving:  # one process, this request on its stdin: its own wall limit is the rebuild's
            self._start(wall_s, stdin=f"{name}\n".encode())
            self.close()  # waits for it
            return out, "" if (out / "done").is_file() else self._how_it_ended()
        if fresh:
            self._start(SERVER_WALL_S)
        if not self._channel.send(name):
            self.close()
            return out, self._how_it_ended()
        deadline = time.monotonic() + wall_s
        while not (out / "done").is_file():
            if not self._thread.is_alive():
                self.close()
                return out, self._how_it_ended()
            if time.monotonic() > deadline:
                self.close(stop=True)
                return out, f"timed out after {format_seconds(wall_s)}"
            time.sleep(POLL_S)
        return out, ""

    def _prepare(self) -> None:
        """A fresh folder for a new process: its own workspace copy and request folders."""
        from harness.engines.base import make_workspace

        if self.folder.exists():
            shutil.rmtree(self.folder)
        self._io = self.folder / "io"
        (self._io / "in").mkdir(parents=True)
        (self._io / "out").mkdir()
        self._workspace = make_workspace(self.submission, self.folder / "workspace")

    def _start(self, wall_s: float, stdin: bytes | None = None) -> None:
        """Start the serving process in a thread (held on its channel when serving, else with ``stdin``)."""
        from harness.sandbox import Channel, Mount, python_mounts

        limits = replace(self.limits, wall_s=wall_s, cell_timeout_s=None, gpu=False)
        io = self._io.resolve()
        # an isolating sandbox has its own process namespace: the server may kill whatever a rebuild left running
        reap = ["--reap"] if getattr(self.sandbox, "isolated", False) else []
        # a library the submission's files name is imported once, before the first rebuild, not in it and again after
        prewarm = [part for name in mentioned(self._workspace, self.submission.files) for part in ("--prewarm", name)]
        command = [sys.executable, "-P", "-m", "harness.probes.rebuild", "--serve", *reap, *prewarm, str(io)]
        self._channel = Channel() if stdin is None else None
        self._ended = []
        options: dict[str, Any] = {"gate": self._channel} if self._channel is not None else {"stdin": stdin}

        def run() -> None:
            try:
                self._ended.append(self.sandbox.run(
                    command, workspace=self._workspace, limits=limits,
                    # the requests read-only: only the host writes them
                    mounts=[*python_mounts(), Mount(source=io / "in", target=io / "in"),
                            Mount(source=io / "out", target=io / "out", writable=True)],
                    env={"CUDA_VISIBLE_DEVICES": "", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"},
                    **options,
                ))
            except BaseException as error:  # reported by the request waiting for it
                self._ended.append(error)

        self._since = time.monotonic()
        self._thread = threading.Thread(target=run, name="rebuild-server", daemon=True)
        self._thread.start()

    def close(self, stop: bool = False) -> None:
        """End the process (``stop``: at once, killing what it runs; else once its rebuild is done) and wait."""
        if self._channel is not None:
            if stop:
                self._channel.stop()
            self._channel.close()
        if self._thread is not None:
            self._thread.join()
        self._channel, self._thread = None, None

    def _how_it_ended(self) -> str:
        """How the last process, ended without writing ``done``, ended: for "the rebuild did not finish: it ..."
        (read after :meth:`close`, which waits for it)."""
        ended = self._ended[0] if self._ended else None
        if ended is None:
            return "ended without a word"
        if isinstance(ended, BaseException):
            return f"could not be run ({type(ended).__name__}: {ended})"
        return ended.message


MENTION_BYTES = 2 * 1024**2
"""Bytes of each file :func:`mentioned` reads at most."""

MENTION_FILES = 1_000
"""Files :func:`mentioned` looks at, at most."""


def mentioned(workspace: Path, files: Any) -> list[str]:
    """The libraries of ``harness.probes.rebuild.PREWARM`` whose package's name (``matplotlib`` for
    ``matplotlib.pyplot``) appears in the submission's Python files or notebooks (``files``, relative to
    ``workspace``: the first ``MENTION_FILES``, the first ``MENTION_BYTES`` of each; only regular files, never a
    link)."""
    from harness.loading.common import CODE_SUFFIXES
    from harness.probes.rebuild import PREWARM

    found: set[str] = set()
    for relative in list(files)[:MENTION_FILES]:
        path = Path(workspace) / relative
        if path.suffix.lower() not in CODE_SUFFIXES or path.is_symlink() or not path.is_file():
            continue
        try:
            with path.open("rb") as handle:
                text = handle.read(MENTION_BYTES)
        except OSError:
            continue
        found.update(name for name in PREWARM if name.split(".")[0].encode() in text)
    return [name for name in PREWARM if name in found]


def _tensor_digest(digest: Any, name: str, tensor: torch.Tensor) -> None:
    """Feed ``tensor``'s name, dtype, shape and bytes into ``digest``."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest.update(json.dumps([name, str(flat.dtype), list(tensor.shape)]).encode())
    digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")


def rebuild_key(code: str, request: dict[str, Any], weights: dict[str, torch.Tensor], inputs: torch.Tensor,
                limits: Limits, content_hash: str) -> str:
    """sha256 over everything a rebuild's result depends on: the kept definitions (``code``), the class name and
    constructor arguments (``request``), the weights' and the evaluation images' bytes, the sandbox limits, the
    submission's files (a class may import a helper module) and the code of the probes that rebuild it."""
    from harness.runcache import runner_code_digest

    digest = hashlib.sha256()
    for part in (code, json.dumps(request, sort_keys=True, default=str),
                 json.dumps(dataclasses.asdict(limits), sort_keys=True, default=str), content_hash,
                 runner_code_digest()):
        digest.update(hashlib.sha256(part.encode()).digest())
    for name, tensor in weights.items():
        _tensor_digest(digest, name, tensor)
    _tensor_digest(digest, "inputs", inputs)
    return digest.hexdigest()


def _result_error(path: Path) -> str:
    """The reason ``harness.probes.rebuild`` wrote, or ""."""
    try:
        said = json.loads(path.read_text(encoding="utf-8")).get("error", "") if path.is_file() else ""
    except (OSError, ValueError, AttributeError):
        return ""
    return said[:500] if isinstance(said, str) else ""
