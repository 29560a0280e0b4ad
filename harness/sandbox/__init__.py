"""Run student code under limits: the only way the harness executes anything a student wrote.

``make_sandbox()`` gives a ``BubblewrapSandbox`` (no network, a read-only whitelisted system,
private workspace and /tmp, own pid namespace, cgroup limits) when bubblewrap works here,
else a ``PlainProcessSandbox`` that limits resources but isolates nothing, with a loud warning.

    sandbox = make_sandbox()
    result = sandbox.run([sys.executable, "run.py"], workspace=copy_of_submission,
                         limits=Limits(wall_s=600), mounts=[*python_mounts(), Mount(data, data)])
"""

from __future__ import annotations

from harness.errors import SandboxError
from harness.sandbox.base import Channel, Gate, Mount, Sandbox, python_mounts
from harness.sandbox.bubblewrap import BubblewrapSandbox
from harness.sandbox.plain import PlainProcessSandbox

__all__ = ["BubblewrapSandbox", "Channel", "Gate", "Mount", "PlainProcessSandbox", "Sandbox", "make_sandbox", "python_mounts"]

KINDS = ("auto", "bubblewrap", "plain")


def make_sandbox(kind: str = "auto") -> Sandbox:
    """The sandbox named by ``kind``: ``bubblewrap``, ``plain``, or ``auto`` (bubblewrap if it works, else plain)."""
    if kind == "bubblewrap":
        return BubblewrapSandbox()
    if kind == "plain":
        return PlainProcessSandbox()
    if kind == "auto":
        try:
            return BubblewrapSandbox()
        except SandboxError as error:
            return PlainProcessSandbox(reason=str(error))
    raise SandboxError(f"no sandbox {kind!r}; known: {list(KINDS)}")
