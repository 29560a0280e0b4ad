"""What every sandbox offers: the ``Sandbox`` protocol, ``Mount``, and the mounts Python needs."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.errors import SandboxError
from harness.models import Limits, SandboxResult

KERNEL_UID_ENV = "GRADEBENCH_KERNEL_UID"
"""Set in a run's environment when the command may start student code as another user than its own: that
user's uid (and gid), which the runner's kernel launcher (``harness.engines.kernel_user``) switches to."""

PACKAGES = ("harness",)
"""The gradebench packages code inside the sandbox may import (the probes live in ``harness``). Not
``reference``: the reference solutions must not be importable by the code being graded."""


@dataclass(frozen=True)
class Mount:
    """A host folder or file made visible inside the sandbox."""

    source: Path
    """Path on the host."""
    target: Path
    """Path inside the sandbox (the same as ``source`` for code that must also run unsandboxed)."""
    writable: bool = False
    """False: read-only (data, configs); True: the run may write there (an artifacts folder)."""
    private: bool = False
    """With ``writable``: only the command itself may write there, not the student code it starts as the
    sandbox's second user (``KERNEL_UID_ENV``): the runner's records. Where the sandbox has one user only
    (not root), the same as any writable mount."""


class Gate:
    """The go of a held run: a runner started with ``--hold`` sets up, then waits for one byte on its stdin, the
    read end of this gate's pipe (:meth:`open` writes it). Closing the gate without a go, or the harness dying (the
    write end closes with it), gives the runner end-of-file: it stops before any student code runs.

    The pipe's descriptors are not inherited by other children (Python's default), so no other run holds the
    write end open.
    """

    def __init__(self) -> None:
        """A closed gate with a fresh pipe."""
        self.reader, self._writer = os.pipe()
        self.opened_at: float | None = None
        """``time.monotonic()`` of the go; None until then (the run's wall limit counts from it)."""
        self.stopped = False
        """Set by :meth:`stop`: the supervisor ends the run as if its wall limit had passed."""
        self._lock = threading.Lock()

    def open(self) -> None:
        """Tell the held runner to go (once; a later call does nothing)."""
        with self._lock:
            if self._writer < 0:
                return
            self.opened_at = time.monotonic()
            try:
                os.write(self._writer, b"g")
            except BrokenPipeError:  # the run is already over (it died during its setup): nothing to start
                pass
            os.close(self._writer)
            self._writer = -1

    def close(self) -> None:
        """Stop the held runner without a go (it ends before any student code); nothing if it went already."""
        with self._lock:
            if self._writer >= 0:
                os.close(self._writer)
                self._writer = -1
        self.started()  # a run never started must not leave its end open either

    def started(self) -> None:
        """The command holds the read end now (or will never start): the host's copy is closed."""
        with self._lock:
            if self.reader >= 0:
                os.close(self.reader)
                self.reader = -1

    def stop(self) -> None:
        """End the run now, whatever it is doing: its processes are killed and it ends as timed out."""
        self.stopped = True


class Channel(Gate):
    """A held run's stdin kept open for more than the go: each :meth:`send` writes one line (the first is the go,
    from which the wall limit counts), :meth:`close` gives the command end-of-file. For a command that serves
    requests one after another (``harness.probes.rebuild --serve``)."""

    def send(self, line: str) -> bool:
        """Write ``line`` and a newline to the command's stdin; False when it can no longer be written (closed, or
        the command is gone)."""
        with self._lock:
            if self._writer < 0:
                return False
            if self.opened_at is None:
                self.opened_at = time.monotonic()
            try:
                os.write(self._writer, line.encode("utf-8") + b"\n")  # a short line: one write, never partial
            except OSError:
                return False
            return True


class Sandbox(Protocol):
    """Runs one command under limits; ``isolated`` says whether it also hides the host.

    A sandbox whose ``run`` also takes ``pass_fds`` (descriptors the command inherits) says so with a true
    ``passes_descriptors`` attribute: the engine then hands the runner its records as descriptors, not a folder.
    """

    isolated: bool
    """True when the command cannot see the network or files it was not given."""
    warning: str
    """What a TA must be told about this sandbox (empty when it isolates)."""

    def run(
        self,
        command: Sequence[str],
        *,
        workspace: Path,
        limits: Limits,
        mounts: Sequence[Mount] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin: bytes | None = None,
    ) -> SandboxResult:
        """Run ``command`` with ``workspace`` as its private writable folder (and default cwd)."""
        ...


def python_mounts() -> list[Mount]:
    """Read-only mounts that run this interpreter and import the installed harness package.

    That is the Python installation (``sys.base_prefix``), the virtual environment (``sys.prefix``)
    and the package folders themselves (an editable install keeps them in the source tree, whose
    other folders must stay hidden). Each is mounted at its own path.
    """
    folders = [Path(sys.base_prefix), Path(sys.prefix)]
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SandboxError(f"the {name!r} package is not installed; cannot make it visible in the sandbox")
        folders.extend(Path(location) for location in spec.submodule_search_locations)
    kept: list[Path] = []
    for folder in sorted({Path(os.path.abspath(f)) for f in folders}, key=lambda p: len(p.parts)):
        if not any(folder.is_relative_to(parent) for parent in kept):
            kept.append(folder)
    for folder in list(kept):  # a symlinked prefix: its real location must be visible too
        real = folder.resolve()
        if real != folder and not any(real.is_relative_to(parent) for parent in kept):
            kept.append(real)
    return [Mount(source=folder, target=folder) for folder in kept]


def base_environment(home: str, user: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The environment of a run: a minimal one (never the host's), then the caller's variables."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.prefix) / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": home,
        "TMPDIR": home,
        "USER": user,
        "LOGNAME": user,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra or {})
    return env


def check_workspace(workspace: Path, cwd: Path | None) -> tuple[Path, Path]:
    """The workspace and the working directory as absolute real paths; SandboxError if unusable."""
    workspace = Path(workspace).resolve()
    if not workspace.is_dir():
        raise SandboxError(f"workspace {workspace} is not a folder")
    if cwd is None:
        return workspace, workspace
    cwd = Path(cwd)
    return workspace, (cwd if cwd.is_absolute() else workspace / cwd)
