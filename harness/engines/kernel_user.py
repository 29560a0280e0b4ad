"""Start the student's kernel as the sandbox's student user, not as the runner's (runs in the sandbox).

    python -P -m harness.engines.kernel_user --uid UID -f CONNECTION_FILE

The runner writes the run's records (run.json) into a folder only its own user may write. When the
sandbox gives the run a second user (``harness.sandbox.base.KERNEL_UID_ENV``, as root), the runner
keeps the capabilities to switch to it and names this module in the kernelspec: it reads the
connection file the runner wrote (private to the runner's user), becomes the student user for good
(real, effective and saved ids, no supplementary groups, no capabilities left for an exec to
inherit), copies the connection file into a folder of its own and execs the ordinary kernel. A
background process the student's code starts can then neither rewrite the records, nor ptrace nor
signal the runner.

Nothing of the student's runs before the switch: the module is started with ``-P`` (the working
directory, the student's folder, is not on ``sys.path``) and imports only the standard library.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import tempfile
from collections.abc import Sequence

PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Give up every capability this process holds (ambient, effective, permitted, inheritable) for good.

    A process that is not root keeps capabilities across ``setresuid`` and, through the ambient set,
    across ``exec``: without this the student's code would inherit the runner's right to switch user.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAP_AMBIENT_CLEAR_ALL) failed")
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # all zero: 64 capabilities in two 32-bit words
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset to no capabilities failed")


def become(uid: int, gid: int) -> None:
    """Switch this process to ``uid``/``gid`` for good, without supplementary groups or capabilities."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    drop_capabilities()
    if (os.getresuid(), os.getresgid()) != ((uid,) * 3, (gid,) * 3):
        raise OSError(f"could not switch to uid {uid}")


def main(argv: Sequence[str] | None = None) -> int:
    """Become the student user and exec ``ipykernel_launcher`` on a private copy of the connection file."""
    parser = argparse.ArgumentParser(prog="python -P -m harness.engines.kernel_user")
    parser.add_argument("--uid", type=int, required=True, help="the student user's uid (its gid is the same)")
    parser.add_argument("-f", dest="connection_file", required=True, help="the connection file the runner wrote")
    options = parser.parse_args(argv)
    with open(options.connection_file, "rb") as handle:
        connection = handle.read()
    become(options.uid, options.uid)
    # the runner's folders are private to the runner's user: the kernel gets folders of its own
    home = tempfile.mkdtemp(prefix="gradebench-kernel-")
    copy = os.path.join(home, os.path.basename(options.connection_file))
    descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(connection)
    for name, folder in (("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "matplotlib"), ("JUPYTER_RUNTIME_DIR", "runtime")):
        os.environ[name] = os.path.join(home, folder)
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", copy])
    return 1  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
