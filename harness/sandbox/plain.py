"""The fallback when bubblewrap cannot run: limits without isolation.

The command runs as the harness's own user, with the host's network and every file that user
can read or write. Only time, CPU, memory, processes, file size and output are limited (per-run
cgroups when usable, else rlimits and a watchdog polling the process tree), and the whole tree
is killed at the end. Use it for a student's self-check on their own machine, never to grade
untrusted code next to hidden labels.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.errors import SandboxError
from harness.models import Limits, SandboxResult
from harness.sandbox.base import Gate, Mount, base_environment, check_workspace
from harness.sandbox.cgroups import remove_stale_groups
from harness.sandbox.supervise import supervise, user_tasks

log = logging.getLogger(__name__)

WARNING = (
    "student code is NOT isolated: the plain-process sandbox isolates nothing but time and memory (it only "
    "limits resources). The code runs as {user}, can use the network, and can read and write every file "
    "{user} can (hidden labels, the results store, other submissions). Install bubblewrap "
    "(apt-get install bubblewrap) before grading untrusted submissions."
)


class PlainProcessSandbox:
    """Runs commands as plain child processes under limits; isolates nothing but time and memory."""

    isolated = False
    holds = True
    """A run may be held after its setup until its :class:`~harness.sandbox.base.Gate` opens (``run(gate=...)``)."""

    def __init__(self, use_cgroups: bool | None = None, reason: str = "") -> None:
        """``use_cgroups`` as for BubblewrapSandbox; ``reason``: why bubblewrap is not used (shown in the warning)."""
        self.use_cgroups = use_cgroups
        self.warning = WARNING.format(user=_user_label()) + (f" (bubblewrap unavailable: {reason})" if reason else "")
        log.warning("%s", self.warning)
        for group in remove_stale_groups():  # left by a harness that was killed before it cleaned up
            log.info("removed the cgroup %s of a run whose harness is gone", group)

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
        gate: Gate | None = None,
    ) -> SandboxResult:
        """Run ``command`` in ``workspace`` under ``limits``; every mount must have its target equal to its source.

        Nothing is hidden, so mounts only document what the command needs (they cannot be remapped).
        HOME and TMPDIR point at a private temporary folder, removed afterwards.
        """
        workspace, cwd = check_workspace(workspace, cwd)
        for mount in mounts:
            if Path(mount.source).resolve() != Path(mount.target).resolve():
                raise SandboxError(
                    f"the plain-process sandbox cannot show {mount.source} at {mount.target}; mount it at its own path"
                )
        home = tempfile.mkdtemp(prefix="gradebench-home-")
        try:
            return supervise(
                command,
                limits=limits,
                env=base_environment(home, _user_label(), env),
                cwd=cwd,
                stdin=stdin,
                isolated=False,
                use_cgroups=self.use_cgroups,
                nproc=None if os.getuid() == 0 else user_tasks() + limits.max_processes,  # root ignores it
                written_dirs=[workspace, Path(home), *(Path(m.source) for m in mounts if m.writable)],
                gate=gate,
            )
        finally:
            shutil.rmtree(home, ignore_errors=True)


def _user_label() -> str:
    """The harness's user, as named in the warning."""
    try:
        return f"user {pwd.getpwuid(os.getuid()).pw_name!r}"
    except KeyError:
        return f"uid {os.getuid()}"
