"""Run one process tree under ``Limits`` and say how it ended: the part both sandboxes share.

The command starts in a new session (its own process group), with rlimits for file size, core
dumps and a per-process CPU backstop, inside per-run cgroups when they are usable. One loop
then reads stdout and stderr as they come (keeping the first and last ``Limits.output_bytes / 2``
of each; a stream past ``Limits.output_bytes`` is an output flood and stops the run),
feeds stdin, watches the wall clock, CPU time, memory and process count, and kills the whole
tree on the first breach. Whatever happens, every process of the run is gone when
``supervise`` returns, and the cgroups are removed.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import selectors
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.engines.runner import describe_signal
from harness.errors import SandboxError
from harness.models import GiB, Limits, MiB, SandboxResult, Verdict
from harness.sandbox.base import Gate
from harness.sandbox.cgroups import CgroupsUnavailable, RunCgroups
from harness.sandbox.quota import MARGIN_BYTES

log = logging.getLogger(__name__)

POLL_S = 0.05
"""How often limits are checked (the watchdog's reaction time when there are no cgroups)."""
DRAIN_S = 2.0
"""How long to keep reading pipes after the tree is dead (a leaked descriptor must not hang the run)."""
READ_CHUNK = 64 * 1024
WORKSPACE_POLL_S = 0.25
"""How often the writable folders are measured against ``Limits.workspace_bytes`` and ``workspace_files``."""
RUN_MARKER = "GRADEBENCH_RUN"
"""Environment variable naming the run: leftovers that left the process tree are found by it."""
LAUNCHED = threading.Event()
"""Set once this process has started its first supervised command. Work the host can do at any time (importing
what it needs after a run) waits for it: before the first launch it would only delay the first student."""


def format_bytes(n: int) -> str:
    """Bytes as a TA reads them: ``512 MiB``, ``4 GiB``, ``1.5 GiB``, ``800 KiB``."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) or value >= 100 else f"{value:.1f} {unit}"
    return f"{n} bytes"


def format_seconds(s: float) -> str:
    """Seconds as a TA reads them: ``5 s``, ``2.5 s``."""
    return f"{s:.0f} s" if s == int(s) else f"{s:g} s"


@dataclass
class _Capture:
    """One output stream: keeps its first and its last ``limit // 2`` bytes, counts (and drops) the rest."""

    limit: int
    kept: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit // 2 - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            del self.tail[: max(0, len(self.tail) - (self.limit - self.limit // 2))]

    @property
    def cut(self) -> bool:
        return self.total > self.limit

    def text(self) -> str:
        if not self.cut:
            return (self.kept + self.tail).decode("utf-8", errors="replace")
        head, tail = (part.decode("utf-8", errors="replace") for part in (self.kept, self.tail))
        note = (f"\n[output cut: {format_bytes(self.total)} printed, the first {format_bytes(len(self.kept))} "
                f"and the last {format_bytes(len(self.tail))} kept]\n")
        return head + note + tail


@dataclass
class _Watch:
    """What the loop measured so far, and the first limit breached."""

    peak_rss: int = 0
    cpu_s: float = 0.0
    max_tasks: int = 0
    breach: Verdict | None = None
    seen: dict[int, float] = field(default_factory=dict)
    """Every process of the tree seen so far (pid -> create time), to kill leftovers that left the tree."""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """The value of ``RUN_MARKER`` in the run's environment."""
    workspace_problem: str = ""
    """What broke the workspace limit (``wrote more than 1 GiB into its working folder``)."""


def child_rlimits(limits: Limits, nproc: int | None) -> list[tuple[int, tuple[int, int]]]:
    """The rlimits every process of the run inherits (backstops; the real limits are cgroups or the watchdog)."""
    fsize = limits.file_size_bytes
    rlimits = [(resource.RLIMIT_FSIZE, (fsize, fsize)), (resource.RLIMIT_CORE, (0, 0))]
    if limits.cpu_s is not None:
        soft = math.ceil(limits.cpu_s) + 1  # per process; the tree's total is watched by the loop
        rlimits.append((resource.RLIMIT_CPU, (soft, soft + 5)))
    if nproc is not None:
        rlimits.append((resource.RLIMIT_NPROC, (nproc, nproc)))
    return rlimits


def user_tasks() -> int:
    """Processes and threads this user has now: the base an RLIMIT_NPROC backstop adds a run's allowance to."""
    uid = os.getuid()
    tasks = 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        uids, threads = proc.info["uids"], proc.info["num_threads"]
        if uids is not None and uids.real == uid and threads:
            tasks += threads
    return tasks


def _make_preexec(procs_files: list[bytes], rlimits: list[tuple[int, tuple[int, int]]]) -> Callable[[], None]:
    """The function the forked child runs before exec: join the cgroups, then set the rlimits."""

    def preexec() -> None:
        pid = str(os.getpid()).encode()
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        for which, values in rlimits:
            resource.setrlimit(which, values)
        # The harness may ignore these; the run must get the default actions back.
        for sig in (signal.SIGXFSZ, signal.SIGXCPU, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)

    return preexec


def supervise(
    argv: Sequence[str],
    *,
    limits: Limits,
    env: Mapping[str, str],
    cwd: Path,
    stdin: bytes | None,
    isolated: bool,
    use_cgroups: bool | None,
    nproc: int | None = None,
    wrapper_tasks: int = 0,
    written_dirs: Sequence[Path] = (),
    exit_status_is_shell_style: bool = False,
    pass_fds: Sequence[int] = (),
    gate: Gate | None = None,
) -> SandboxResult:
    """Run ``argv`` under ``limits`` and return how it went; every process of the run is dead afterwards.

    ``use_cgroups``: True requires per-run cgroups (SandboxError if they cannot be made), None uses them
    when they work, False never (the watchdog polls the process tree instead). ``nproc`` sets
    RLIMIT_NPROC when there are no cgroups (a backstop, only meaningful for a dedicated uid).
    ``wrapper_tasks`` is how many processes the sandbox itself adds to the tree (not counted against
    ``max_processes``). ``written_dirs`` are the
    writable folders searched for a file that reached the size limit. ``exit_status_is_shell_style``:
    the wrapper reports death by signal N as exit status 128 + N (bubblewrap does). ``pass_fds``
    are descriptors the wrapper reads or hands on to the command (closed by the caller). ``gate``: the run is held
    (its runner waits for the gate's go on stdin, in place of ``stdin``); the wall limit counts from the go, and the
    reported wall time too (before it, only the memory, process and output limits apply: the host ends a held run by
    closing the gate).
    """
    cgroups = _make_cgroups(limits, wrapper_tasks, use_cgroups)
    watch = _Watch()
    out, err = _Capture(limits.output_bytes), _Capture(limits.output_bytes)
    started = time.monotonic()
    start_epoch = time.time()
    preexec = _make_preexec(cgroups.procs_files() if cgroups else [], child_rlimits(limits, None if cgroups else nproc))
    try:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=gate.reader if gate is not None else subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**env, RUN_MARKER: watch.run_id},
                cwd=cwd,
                start_new_session=True,
                preexec_fn=preexec,
                pass_fds=tuple(pass_fds),
            )
        except subprocess.SubprocessError as error:  # the child could not join its cgroups or set rlimits
            raise SandboxError(f"could not prepare the sandboxed process: {error}") from error
        except OSError as error:
            return SandboxResult(
                verdict="error", message=f"could not start {argv[0]}: {error.strerror or error}",
                returncode=None, wall_s=0.0, cpu_s=0.0, peak_memory_bytes=0, stdout="", stderr="", isolated=isolated,
            )
        finally:
            if gate is not None:
                gate.started()
        LAUNCHED.set()
        status, rusage = _loop(
            proc, stdin, limits, cgroups, watch, out, err, started, wrapper_tasks, written_dirs, gate
        )
        if gate is not None and gate.opened_at is not None:
            started = gate.opened_at  # the student's time: the setup before the go was the harness's
        if watch.breach is None and written_dirs:  # a fast writer may have finished between two measures
            watch.workspace_problem = workspace_breach(written_dirs, limits)
            if watch.workspace_problem:
                watch.breach = "workspace"
        wall_s = time.monotonic() - started
        returncode = _returncode(status, exit_status_is_shell_style)
        cpu_s = max(watch.cpu_s, rusage.ru_utime + rusage.ru_stime)
        peak = max(watch.peak_rss, rusage.ru_maxrss * 1024)
        if cgroups is None and nproc is not None and _fork_refused(watch, limits, returncode, err):
            watch.breach = "processes"
        if cgroups is not None:
            cpu_s = max(cpu_s, cgroups.cpu_seconds())
            peak = cgroups.peak_memory_bytes() or peak
            if cgroups.oom_kills():
                watch.breach = "memory"
            elif cgroups.refused_forks() and watch.breach in (None, "timeout"):
                watch.breach = "processes"
    finally:
        if cgroups is not None:
            for problem in cgroups.remove():
                log.warning("sandbox clean-up: %s", problem)
    verdict = _verdict(watch.breach, returncode, err, out, limits, written_dirs, start_epoch)
    return SandboxResult(
        verdict=verdict,
        message=watch.workspace_problem if verdict == "workspace" else _message(verdict, returncode, limits, out, err),
        returncode=returncode,
        wall_s=wall_s,
        cpu_s=cpu_s,
        peak_memory_bytes=peak,
        stdout=out.text(),
        stderr=err.text(),
        isolated=isolated,
    )


def _make_cgroups(limits: Limits, wrapper_tasks: int, use_cgroups: bool | None) -> RunCgroups | None:
    if use_cgroups is False:
        return None
    try:
        # the workspace may be a tmpfs (as root, harness.sandbox.quota): its files are charged to the group too
        files = limits.workspace_bytes + MARGIN_BYTES
        return RunCgroups.create(limits.memory_bytes, limits.max_processes + wrapper_tasks, files_bytes=files)
    except CgroupsUnavailable as error:
        if use_cgroups:
            raise SandboxError(f"cgroups are required but unusable: {error}") from error
        log.debug("no cgroups (%s); a watchdog polls the process tree instead", error)
        return None


def _loop(
    proc: subprocess.Popen[bytes],
    stdin: bytes | None,
    limits: Limits,
    cgroups: RunCgroups | None,
    watch: _Watch,
    out: _Capture,
    err: _Capture,
    started: float,
    wrapper_tasks: int,
    written_dirs: Sequence[Path] = (),
    gate: Gate | None = None,
) -> tuple[int, resource.struct_rusage]:
    """Pump the pipes and watch the limits until the command exits or breaks one; then kill and reap."""
    selector = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    captures = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    for fd in captures:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    feed = _Feed(stdin or b"")
    if proc.stdin is not None:
        os.set_blocking(proc.stdin.fileno(), False)
        selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
    exit_fd = _pidfd(proc.pid)  # readable once the command exits: no polling delay at the end
    if exit_fd is not None:
        selector.register(exit_fd, selectors.EVENT_READ)
    deadline = started + limits.wall_s if gate is None else math.inf  # held: counted from the go
    next_check = next_measure = started
    try:
        while True:
            now = time.monotonic()
            if gate is not None and gate.opened_at is not None and deadline == math.inf:
                deadline = gate.opened_at + limits.wall_s
            _pump(selector, captures, proc, feed, timeout=max(0.0, min(next_check, deadline) - now))
            if out.cut or err.cut:  # an output flood: stopped at once, never buffered
                watch.breach = "output"
                break
            if _has_exited(proc.pid):
                break
            now = time.monotonic()
            if now >= deadline or (gate is not None and gate.stopped):
                watch.breach = "timeout"
                break
            if now >= next_check:
                next_check = now + POLL_S
                if _check_limits(proc.pid, limits, cgroups, watch, wrapper_tasks):
                    break
            if now >= next_measure and written_dirs:
                next_measure = now + WORKSPACE_POLL_S
                watch.workspace_problem = workspace_breach(written_dirs, limits)
                if watch.workspace_problem:
                    watch.breach = "workspace"
                    break
        if exit_fd is not None:
            selector.unregister(exit_fd)
        _kill_tree(proc.pid, cgroups, watch)
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        drain_until = time.monotonic() + DRAIN_S
        while any(fd in captures for fd in selector.get_map()):
            if time.monotonic() > drain_until:
                log.warning("sandbox: output pipes still open %.0f s after the run ended; stopped reading", DRAIN_S)
                break
            _pump(selector, captures, proc, feed, timeout=0.1)
        return status, rusage
    finally:
        selector.close()
        if exit_fd is not None:
            os.close(exit_fd)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except OSError:
                    pass


@dataclass
class _Feed:
    """The bytes still to write to the command's stdin."""

    data: bytes
    offset: int = 0


def _pump(
    selector: selectors.BaseSelector,
    captures: dict[int, _Capture],
    proc: subprocess.Popen[bytes],
    feed: _Feed,
    timeout: float,
) -> None:
    """Read what is available on stdout/stderr and write what stdin can take (closing it when done)."""
    for key, events in selector.select(timeout):
        fd = key.fd
        if not events & selectors.EVENT_WRITE and fd not in captures:
            continue  # the exit descriptor: the loop checks for exit itself
        if fd in captures:
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                captures[fd].feed(chunk)
            else:
                selector.unregister(fd)
            continue
        try:
            feed.offset += os.write(fd, feed.data[feed.offset : feed.offset + READ_CHUNK])
        except BlockingIOError:
            continue
        except OSError:  # the command closed its stdin: the rest is not wanted
            feed.offset = len(feed.data)
        if feed.offset >= len(feed.data):
            selector.unregister(fd)
            assert proc.stdin is not None
            proc.stdin.close()


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when the process exits (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _has_exited(pid: int) -> bool:
    """True once the process has exited (it stays a zombie, so its pid cannot be reused yet)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _tree(pid: int, watch: _Watch) -> list[psutil.Process]:
    """The command's process and its descendants now; remembers each for the final kill."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    for p in procs:
        try:
            watch.seen.setdefault(p.pid, p.create_time())
        except psutil.Error:
            pass
    return procs


def _check_limits(pid: int, limits: Limits, cgroups: RunCgroups | None, watch: _Watch, wrapper_tasks: int) -> bool:
    """Measure the run and record the first breach; True when the run must be killed."""
    if cgroups is not None:
        watch.cpu_s = max(watch.cpu_s, cgroups.cpu_seconds())
        if cgroups.oom_kills() or cgroups.process_bytes() > limits.memory_bytes:
            watch.breach = "memory"
            return True
    else:
        rss = cpu = 0.0
        tasks = 0
        for p in _tree(pid, watch):
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    times = p.cpu_times()
                    cpu += times.user + times.system + times.children_user + times.children_system
                    tasks += p.num_threads()
            except psutil.Error:
                continue
        watch.peak_rss = max(watch.peak_rss, int(rss))
        watch.cpu_s = max(watch.cpu_s, cpu)
        watch.max_tasks = max(watch.max_tasks, tasks - wrapper_tasks)
        if rss > limits.memory_bytes:
            watch.breach = "memory"
            return True
        if tasks - wrapper_tasks > limits.max_processes:
            watch.breach = "processes"
            return True
    if limits.cpu_s is not None and watch.cpu_s > limits.cpu_s:
        watch.breach = "cpu_time"
        return True
    return False


def workspace_breach(folders: Sequence[Path], limits: Limits) -> str:
    """How the writable folders break the workspace limits (``wrote more than 1 GiB into its working folder``), or "".

    Space is what the files take on disk (a sparse file fills nothing); the walk stops as soon as a
    limit is passed, so a folder of millions of files costs no more than the limit's worth of entries.
    """
    used = entries = 0
    stack = [str(folder) for folder in folders]
    while stack:
        try:
            with os.scandir(stack.pop()) as found:
                for entry in found:
                    entries += 1
                    if entries > limits.workspace_files:
                        return f"created more than {limits.workspace_files:,} files in its working folder"
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            used += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        continue
                    if used > limits.workspace_bytes:
                        return f"wrote more than {format_bytes(limits.workspace_bytes)} into its working folder"
        except OSError:
            continue
    return ""


def _kill_tree(pid: int, cgroups: RunCgroups | None, watch: _Watch) -> None:
    """SIGKILL the command, its process group, its cgroups and every descendant ever seen."""
    if cgroups is None:
        _tree(pid, watch)  # last look, to catch children born since the last poll
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass
    if cgroups is not None:
        cgroups.kill_all()
    for child_pid, created in watch.seen.items():
        if child_pid == pid:
            continue
        try:
            p = psutil.Process(child_pid)
            if p.create_time() == created:
                p.kill()
        except psutil.Error:
            pass
    if cgroups is None:
        _kill_marked(watch.run_id)
        _wait_gone(pid, watch)


def _wait_gone(pid: int, watch: _Watch, timeout_s: float = 2.0) -> None:
    """Wait until the killed processes are gone, so the next run starts clean (they count against limits)."""
    procs = []
    for child_pid, created in watch.seen.items():
        if child_pid == pid:
            continue
        try:
            p = psutil.Process(child_pid)
            if p.create_time() == created:
                procs.append(p)
        except psutil.Error:
            pass
    deadline = time.monotonic() + timeout_s
    while procs and time.monotonic() < deadline:
        procs = [p for p in procs if _alive(p)]
        time.sleep(0.01)


def _alive(p: psutil.Process) -> bool:
    """Whether a process still runs (a zombie has finished)."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill_marked(run_id: str) -> None:
    """Kill processes that carry this run's marker in their environment (daemons that left the tree)."""
    uid = os.getuid()
    for p in psutil.process_iter(["uids"]):
        try:
            if uid != 0 and (p.info["uids"] is None or p.info["uids"].real != uid):
                continue
            if p.environ().get(RUN_MARKER) == run_id:
                p.kill()
        except psutil.Error:
            continue


def _fork_refused(watch: _Watch, limits: Limits, returncode: int, err: _Capture) -> bool:
    """Whether RLIMIT_NPROC (no cgroup to count refusals) stopped the run: it failed or hung at the ceiling,
    or failed saying a fork was refused (EAGAIN: Python's BlockingIOError, the shells' "Cannot fork")."""
    if watch.breach not in (None, "timeout") or (watch.breach is None and returncode == 0):
        return False
    if watch.max_tasks >= limits.max_processes:
        return True
    return watch.breach is None and (b"Resource temporarily unavailable" in err.kept or b"Cannot fork" in err.kept)


def _returncode(status: int, shell_style: bool) -> int:
    """The exit status, negative for a signal (also when the wrapper reported it as 128 + N)."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    code = os.WEXITSTATUS(status)
    if shell_style and 128 < code <= 128 + 64:
        return -(code - 128)
    return code


def _verdict(
    breach: Verdict | None,
    returncode: int,
    err: _Capture,
    out: _Capture,
    limits: Limits,
    written_dirs: Sequence[Path],
    start_epoch: float,
) -> Verdict:
    """The one verdict of the run: a breached limit first, then output cut, then the exit status."""
    if breach is not None:
        return breach
    if returncode == -signal.SIGXCPU:
        return "cpu_time"
    if returncode == -signal.SIGXFSZ or _file_too_large(err, limits, written_dirs, start_epoch):
        return "file_size"
    if out.cut or err.cut:
        return "output"
    if returncode < 0:
        return "killed"
    return "ok" if returncode == 0 else "error"


def _file_too_large(err: _Capture, limits: Limits, written_dirs: Sequence[Path], start_epoch: float) -> bool:
    """Whether the run hit the file size limit: Python reports EFBIG; other programs leave a file at the limit."""
    if b"[Errno 27] File too large" in err.kept:
        return True
    budget = 20_000  # entries: enough for any submission, bounded for a hostile one
    for folder in written_dirs:
        for root, dirs, files in os.walk(folder):
            budget -= len(dirs) + len(files)
            for name in files:
                try:
                    st = os.lstat(os.path.join(root, name))
                except OSError:
                    continue
                if st.st_size >= limits.file_size_bytes and st.st_mtime >= start_epoch - 1:
                    return True
            if budget < 0:
                return False
    return False


def _message(verdict: Verdict, returncode: int, limits: Limits, out: _Capture, err: _Capture) -> str:
    """What a TA reads about the run."""
    if verdict == "timeout":
        return f"timed out after {format_seconds(limits.wall_s)}"
    if verdict == "cpu_time":
        return f"used more than {format_seconds(limits.cpu_s or 0)} of CPU time"
    if verdict == "memory":
        return f"exceeded the {format_bytes(limits.memory_bytes)} memory limit"
    if verdict == "processes":
        return f"started more than {limits.max_processes} processes (threads count too)"
    if verdict == "file_size":
        return f"wrote a file larger than {format_bytes(limits.file_size_bytes)}"
    if verdict == "output":
        streams = " and ".join(name for name, cap in (("stdout", out), ("stderr", err)) if cap.cut)
        return f"printed more than {format_bytes(limits.output_bytes)} on {streams} (an output flood) and was stopped"
    if verdict == "killed":
        return f"was {describe_signal(-returncode)[1]}"
    return f"exit code {returncode}"
