"""The isolating sandbox: bubblewrap namespaces, a whitelisted read-only system, cgroup limits.

Inside, the command sees only: /usr and the /bin, /sbin, /lib* links or folders; a short list
of harmless /etc files (the dynamic linker cache, time zone, fonts, certificates: never
shadow, ssh or sudo files) plus a passwd and group naming only the sandbox user; the mounts it
was given; its workspace (read-write, same path as on the host); a private /tmp and /dev/shm
(tmpfs); its own /proc (new pid namespace: no host process is visible or signalable). No
network (loopback only), no IPC or hostname shared with the host, a new session (no terminal
injection), and it dies with the harness. GPU device nodes appear only when ``Limits.gpu``.

When the harness runs as root, the command does not: bubblewrap keeps only the capabilities
needed to switch user, and ``setpriv`` drops to an unprivileged uid/gid of its own (a fresh pair
per run, from ``SANDBOX_UIDS``, so that concurrent runs cannot touch each other and RLIMIT_NPROC
counts one run only) with no capabilities and no_new_privs before the command starts. A run with
a ``private`` writable mount (the runner's records) has two users: the command (the runner) keeps
only ``RUNNER_CAPS``, to start the student's code as the pair's second user (named in the
environment as ``KERNEL_UID_ENV``) and to stop it; the workspace and other writable mounts are
handed to that second user, the private ones to the runner's, so nothing the student's code
starts can rewrite them, nor ptrace or signal the runner. A seccomp filter
(``harness.sandbox.seccomp``) forbids both to create user namespaces. As any other user, bubblewrap
puts the command in a user namespace of that user (and forbids it to make more): there is one user
only, so the runner's records are not mounted at all: the host passes their descriptors in
(``pass_fds``) and the runner keeps them from the student's code (``harness.engines.runner.RecordDescriptors``).
Descriptors passed in give a run two users as root, as a private mount does.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import random
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.errors import SandboxError
from harness.models import Limits, SandboxResult
from harness.sandbox.base import KERNEL_UID_ENV, Gate, Mount, base_environment, check_workspace
from harness.sandbox.seccomp import no_user_namespaces_fd
from harness.sandbox.cgroups import remove_stale_groups
from harness.sandbox.supervise import supervise, user_tasks

log = logging.getLogger(__name__)

SANDBOX_UIDS = range(2_000_000, 2_100_000, 2)
"""Unprivileged uids (no account on the host) that run the command when the harness is root, one per run;
each run's student code runs as the next uid (``uid + 1``)."""
SANDBOX_USER = "sandbox"
"""The name of the sandbox user inside (with root and ``STUDENT_USER``, the only accounts in its /etc/passwd)."""
STUDENT_USER = "student"
"""The name of the second user inside, which the student's code runs as (when the harness is root)."""
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_WHITELIST = (
    "alternatives", "ca-certificates", "ca-certificates.conf", "debian_version", "fonts", "gai.conf", "host.conf",
    "hosts", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "locale.alias", "localtime", "matplotlibrc",
    "mime.types", "nsswitch.conf", "os-release", "pki", "ssl", "timezone",
)
"""/etc entries the command may read; everything else there (shadow, ssh, sudoers...) stays hidden."""
ROOT_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_DAC_READ_SEARCH", "CAP_KILL")
"""Capabilities bubblewrap keeps as root, only until setpriv drops all but ``RUNNER_CAPS``: switching user,
and entering the working directory, which belongs to the student user."""
RUNNER_CAPS = ("setuid", "setgid", "kill")
"""What the command keeps as the sandbox user (root only): starting a process as the student user, and
interrupting or killing it. The runner drops them before anything of the student's runs in its own process."""
WRAPPER_TASKS = 2
"""bubblewrap's own processes in the run (outside monitor, init of the pid namespace)."""


class BubblewrapSandbox:
    """Runs commands isolated by bubblewrap; raises SandboxError at construction if bwrap cannot run here."""

    isolated = True
    holds = True
    """A run may be held after its setup until its :class:`~harness.sandbox.base.Gate` opens (``run(gate=...)``)."""
    warning = ""
    passes_descriptors = True
    """``run`` takes ``pass_fds``: descriptors the command inherits (the runner's records, opened by the host)."""

    def __init__(self, bwrap: str | None = None, use_cgroups: bool | None = None) -> None:
        """``bwrap``: the executable (found on PATH by default). ``use_cgroups``: True requires cgroup
        limits, False never uses them (a watchdog polls memory and processes), None uses them when they work."""
        found = bwrap or shutil.which("bwrap")
        if not found or not os.access(found, os.X_OK):
            raise SandboxError(
                "bubblewrap (bwrap) is not installed: install it (apt-get install bubblewrap) to isolate student code"
            )
        self.bwrap = found
        self.use_cgroups = use_cgroups
        self.as_root = os.geteuid() == 0
        self.setpriv = shutil.which("setpriv", path="/usr/bin:/bin") if self.as_root else None
        if self.as_root and not self.setpriv:
            raise SandboxError(
                "running as root needs setpriv (util-linux) to drop student code to an unprivileged user"
            )
        self._probe()
        for group in remove_stale_groups():  # left by a harness that was killed before it cleaned up
            log.info("removed the cgroup %s of a run whose harness is gone", group)

    def _probe(self) -> None:
        """Run ``true`` in a sandbox once, so a broken bubblewrap is reported now rather than per student."""
        with tempfile.TemporaryDirectory(prefix="gradebench-probe-") as workspace:
            uid = SANDBOX_UIDS[0] if self.as_root else os.getuid()
            argv, fds = self._argv(["true"], Path(workspace), Limits(), (), Path(workspace), uid)
            try:
                done = subprocess.run(argv, pass_fds=fds, capture_output=True, timeout=30, env=_plain_env())
            except (OSError, subprocess.TimeoutExpired) as error:
                raise SandboxError(f"bubblewrap cannot run here: {error}") from error
            finally:
                for fd in fds:
                    os.close(fd)
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
            raise SandboxError(f"bubblewrap cannot run here: {detail}")

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
        pass_fds: Sequence[int] = (),
        gate: Gate | None = None,
    ) -> SandboxResult:
        """Run ``command`` isolated; only the system whitelist, ``mounts`` and ``workspace`` are visible.

        Pass ``python_mounts()`` among ``mounts`` to run this Python. ``env`` adds to a minimal
        environment (PATH, HOME=/tmp, LANG...); the host's environment is never passed in. When the
        harness is root, ``workspace`` and the writable mounts are handed (chown) to the run's
        unprivileged user: pass private copies, never shared folders. A writable ``private`` mount
        gives the run a second user (root only): the command keeps ``RUNNER_CAPS`` and may start
        processes as that user (``KERNEL_UID_ENV``), which owns the workspace and the other writable
        mounts; the private ones stay the command's own. ``pass_fds``: descriptors the command inherits, at the
        same numbers (the caller keeps and closes them): the runner's records, which are the command's own as a
        private mount is (as root they too give the run a second user).
        """
        workspace, cwd = check_workspace(workspace, cwd)
        for mount in mounts:
            if not os.path.exists(mount.source):
                raise SandboxError(f"cannot mount {mount.source} in the sandbox: it does not exist")
        writable = [workspace, *(Path(m.source) for m in mounts if m.writable)]
        uid = random.choice(SANDBOX_UIDS) if self.as_root else os.getuid()
        private = {Path(m.source) for m in mounts if m.writable and m.private}
        two_users = self.as_root and bool(private or pass_fds)
        if two_users:
            for folder in writable:
                if folder in private:
                    _give_to_user(folder, uid)
                else:  # the student user's, and writable to the runner through its group (a script runs as the runner)
                    _give_to_user(folder, uid + 1, group_writable=True)
            env = {**(env or {}), KERNEL_UID_ENV: str(uid + 1)}
        elif self.as_root:
            for folder in writable:
                _give_to_user(folder, uid)
        argv, fds = self._argv(command, workspace, limits, mounts, cwd, uid, two_users)
        user = SANDBOX_USER if self.as_root else _user_name()
        try:
            return supervise(
                argv,
                limits=limits,
                env=base_environment("/tmp", user, env),
                cwd=workspace,
                stdin=stdin,
                isolated=True,
                use_cgroups=self.use_cgroups,
                nproc=limits.max_processes if self.as_root else user_tasks() + limits.max_processes,
                wrapper_tasks=WRAPPER_TASKS,
                written_dirs=writable,
                gate=gate,
                exit_status_is_shell_style=True,
                pass_fds=[*fds, *pass_fds],
            )
        finally:
            for fd in fds:
                os.close(fd)

    def _argv(
        self, command: Sequence[str], workspace: Path, limits: Limits, mounts: Sequence[Mount], cwd: Path, uid: int,
        two_users: bool = False,
    ) -> tuple[list[str], list[int]]:
        """The bwrap command line running ``command`` as ``uid`` (keeping ``RUNNER_CAPS`` and the group of the
        student user ``uid + 1`` when ``two_users``); the descriptors it reads passwd and group from."""
        ops: list[tuple[str, list[str]]] = []
        for folder in SYSTEM_DIRS:
            if os.path.islink(folder):
                ops.append((folder, ["--symlink", os.readlink(folder), folder]))
            elif os.path.isdir(folder):
                ops.append((folder, ["--ro-bind", folder, folder]))
        for name in ETC_WHITELIST:
            path = f"/etc/{name}"
            if os.path.lexists(path):
                ops.append((path, ["--ro-bind-try", path, path]))
        fds = []
        gid = uid if self.as_root else os.getgid()
        name = SANDBOX_USER if self.as_root else _user_name()
        for path, text in (
            ("/etc/passwd", f"root:x:0:0:root:/root:/usr/sbin/nologin\n{name}:x:{uid}:{gid}::/tmp:/usr/sbin/nologin\n"
             + (f"{STUDENT_USER}:x:{uid + 1}:{gid + 1}::/tmp:/usr/sbin/nologin\n" if two_users else "")),
            ("/etc/group", f"root:x:0:\n{name}:x:{gid}:\n" + (f"{STUDENT_USER}:x:{gid + 1}:{name}\n" if two_users else "")),
        ):
            fd = _data_fd(text.encode())
            fds.append(fd)
            ops.append((path, ["--perms", "0644", "--ro-bind-data", str(fd), path]))
        shared_memory = str(limits.memory_bytes)
        ops += [
            ("/proc", ["--proc", "/proc"]),
            ("/dev", ["--dev", "/dev"]),
            ("/dev/shm", ["--perms", "1777", "--size", shared_memory, "--tmpfs", "/dev/shm"]),
            ("/tmp", ["--perms", "1777", "--size", str(limits.file_size_bytes), "--tmpfs", "/tmp"]),
        ]
        if limits.gpu:
            for node in sorted(glob.glob("/dev/nvidia*")):
                ops.append((node, ["--dev-bind", node, node]))
            ops.append(("/sys", ["--ro-bind", "/sys", "/sys"]))  # the CUDA driver reads PCI topology there
        for mount in mounts:
            kind = "--bind" if mount.writable else "--ro-bind"
            ops.append((str(mount.target), [kind, str(mount.source), str(mount.target)]))
        ops.append((str(workspace), ["--bind", str(workspace), str(workspace)]))
        ops += _parent_dirs(ops)
        ops.sort(key=lambda op: len(Path(op[0]).parts))  # parents before what is mounted inside them

        argv = [self.bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        argv += ["--hostname", "sandbox", "--die-with-parent", "--new-session"]
        if self.as_root:
            argv += ["--cap-drop", "ALL"]
            argv += [arg for cap in ROOT_CAPS for arg in ("--cap-add", cap)]
            seccomp = no_user_namespaces_fd()  # --disable-userns needs a user namespace, which root does not get
            fds.append(seccomp)
            argv += ["--seccomp", str(seccomp)]
        else:
            argv += ["--unshare-user", "--disable-userns"]
        for _, args in ops:
            argv += args
        argv += ["--chdir", str(cwd), "--"]
        if self.as_root:
            assert self.setpriv is not None
            argv += [self.setpriv, f"--reuid={uid}", f"--regid={gid}", "--no-new-privs"]
            if two_users:
                kept = "-all," + ",".join(f"+{cap}" for cap in RUNNER_CAPS)
                argv += [f"--groups={gid + 1}", f"--bounding-set={kept}", f"--inh-caps={kept}", f"--ambient-caps={kept}"]
            else:
                argv += ["--clear-groups", "--bounding-set=-all", "--inh-caps=-all"]
            argv.append("--")
        return argv + list(command), fds


BIND_OPTIONS = ("--bind", "--ro-bind", "--ro-bind-try", "--dev-bind", "--ro-bind-data")


def _parent_dirs(ops: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """World-traversable folders leading to every mount point (bubblewrap would create them private to root).

    Folders inside a bind mount already exist with the host's permissions and are left alone.
    """
    targets = {target for target, _ in ops}
    binds = [Path(target) for target, args in ops if any(arg in BIND_OPTIONS for arg in args)]
    parents: set[Path] = set()
    for target, _ in ops:
        parents.update(p for p in Path(target).parents if p != Path("/"))
    return [
        (str(p), ["--perms", "0755", "--dir", str(p)])
        for p in sorted(parents, key=lambda p: len(p.parts))
        if str(p) not in targets and not any(p.is_relative_to(b) for b in binds)
    ]


def _data_fd(data: bytes) -> int:
    """A readable descriptor holding ``data`` (bubblewrap copies it into a file of the sandbox)."""
    read, write = os.pipe()
    try:
        os.write(write, data)  # small: fits in the pipe buffer
    finally:
        os.close(write)
    return read


def _give_to_user(folder: Path, uid: int, group_writable: bool = False) -> None:
    """Hand a writable folder (a private copy) to a sandbox user, so the unprivileged command can write it.

    ``group_writable``: its group (the same id) may write too, and new entries in its folders join that
    group (the command's user is a member of the student user's group).
    """
    paths = [str(folder)]
    if folder.is_dir() and not folder.is_symlink():
        for root, dirs, files in os.walk(folder):
            paths += [os.path.join(root, name) for name in dirs + files]
    for path in paths:
        os.chown(path, uid, uid, follow_symlinks=False)
        if group_writable and not os.path.islink(path):
            mode = os.stat(path).st_mode
            extra = stat.S_IWGRP | stat.S_IRGRP | ((stat.S_ISGID | stat.S_IXGRP) if stat.S_ISDIR(mode) else 0)
            os.chmod(path, stat.S_IMODE(mode) | extra)


def _user_name() -> str:
    """The name of the user running the harness."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return "user"


def _plain_env() -> dict[str, str]:
    """A minimal environment for the construction probe."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
