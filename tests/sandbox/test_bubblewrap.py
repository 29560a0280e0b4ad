"""Isolation by bubblewrap, each requirement checked by a real hostile command run inside.

In CI (CI=true) a missing or broken bubblewrap fails these tests: the sandbox is built directly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

import harness
from harness.errors import SandboxError
from harness.models import Limits
from harness.sandbox import BubblewrapSandbox, Mount, PlainProcessSandbox, make_sandbox, python_mounts
from harness.sandbox import bubblewrap as bubblewrap_module

PY = sys.executable
REPO = Path(harness.__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sandbox() -> BubblewrapSandbox:
    """The bubblewrap sandbox; in CI (CI=true) a missing bwrap fails instead of skipping."""
    if os.environ.get("CI") != "true" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (in CI this fails)")
    return BubblewrapSandbox()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "workspace"
    folder.mkdir()
    return folder


def run_py(sandbox, code: str, workspace: Path, mounts=(), **kwargs):
    """Run a Python snippet in the sandbox with the interpreter mounted."""
    return sandbox.run(
        [PY, "-c", textwrap.dedent(code)],
        workspace=workspace,
        limits=Limits(wall_s=20),
        mounts=[*python_mounts(), *mounts],
        **kwargs,
    )


def test_no_network_but_loopback_works(sandbox, workspace):
    code = """
        import socket
        try:
            socket.create_connection(("1.1.1.1", 53), timeout=2)
            print("outside: connected")
        except OSError as error:
            print("outside:", error.strerror)
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        client = socket.create_connection(server.getsockname(), timeout=2)
        peer, _ = server.accept()
        client.sendall(b"ping")
        print("loopback:", peer.recv(4).decode())
    """
    result = run_py(sandbox, code, workspace)
    assert result.verdict == "ok", result.stderr
    assert result.stdout == "outside: Network is unreachable\nloopback: ping\n"


def test_only_given_folders_are_visible(sandbox, tmp_path, workspace):
    """Hidden labels next to a mounted folder, another submission, ~/.ssh, the repo's other folders: invisible."""
    public = tmp_path / "course" / "public"
    public.mkdir(parents=True)
    (public / "images.txt").write_text("pixels")
    hidden = tmp_path / "course" / "hidden"
    hidden.mkdir()
    (hidden / "labels.csv").write_text("7,2,1")
    other = tmp_path / "other_student"
    other.mkdir()
    (other / "solution.py").write_text("answer = 42")
    secrets = [hidden / "labels.csv", other / "solution.py", REPO / "pyproject.toml", REPO / "tests",
               Path.home() / ".ssh", Path.home() / ".bashrc", Path("/etc/shadow"), Path("/etc/sudoers")]
    code = f"""
        import os
        print(open({str(public / "images.txt")!r}).read())
        for path in {[str(p) for p in secrets]!r}:
            print(path, os.path.exists(path))
        print(sorted(os.listdir({str(REPO)!r})))
        print(open("/etc/passwd").read().count(chr(10)))
    """
    result = run_py(sandbox, code, workspace, mounts=[Mount(public, public)])
    assert result.verdict == "ok", result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pixels"
    assert lines[1 : 1 + len(secrets)] == [f"{p} False" for p in secrets]
    assert lines[-2] == str(sorted({".venv", "harness"} & set(os.listdir(REPO))))  # not the reference solutions
    assert lines[-1] == "2"  # root and the sandbox user: no host accounts


def test_runs_unprivileged(sandbox, workspace):
    code = """
        import os
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        print(os.getuid(), os.getgid(), status["CapEff"].strip(), status["CapBnd"].strip(), status["NoNewPrivs"].strip())
    """
    result = run_py(sandbox, code, workspace)
    uid, gid, cap_eff, cap_bnd, no_new_privs = result.stdout.split()
    assert cap_eff == "0000000000000000"
    if os.geteuid() == 0:
        assert int(uid) in bubblewrap_module.SANDBOX_UIDS and gid == uid
        assert (cap_bnd, no_new_privs) == ("0000000000000000", "1")
    else:
        assert uid == str(os.getuid())


def test_a_private_mount_gives_the_run_a_second_user(sandbox, workspace, tmp_path):
    """As root, a private writable mount is the command's own; the workspace belongs to a second user that the
    command may switch its children to (and only to it: it keeps no other capability)."""
    if os.geteuid() != 0:
        pytest.skip("one user only without root: the private mount is an ordinary writable one")
    records = tmp_path / "records"
    records.mkdir()
    code = f"""
        import os
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        student = int(os.environ["GRADEBENCH_KERNEL_UID"])
        print(os.getuid(), student, os.stat({str(records)!r}).st_uid, os.stat(".").st_uid, status["CapEff"].strip(),
              flush=True)
        if os.fork() == 0:
            from harness.engines.kernel_user import become
            become(student, student)
            status = dict(line.split(":", 1) for line in open("/proc/self/status"))
            print(os.access({str(records)!r}, os.W_OK), os.access(".", os.W_OK), status["CapEff"].strip(),
                  status["CapAmb"].strip(), flush=True)
            os._exit(0)
        os.wait()
    """
    result = run_py(sandbox, code, workspace, mounts=[Mount(records, records, writable=True, private=True)])
    assert result.verdict == "ok", result.stderr
    runner, student, records_owner, workspace_owner, caps = result.stdout.splitlines()[0].split()
    assert int(runner) in bubblewrap_module.SANDBOX_UIDS and student == str(int(runner) + 1)
    assert (records_owner, workspace_owner) == (runner, student)
    assert caps == "00000000000000e0"  # CAP_KILL, CAP_SETGID, CAP_SETUID and nothing else
    assert result.stdout.splitlines()[1].split() == ["False", "True", "0000000000000000", "0000000000000000"]


def test_passed_descriptors_reach_the_command_and_nothing_else(sandbox, workspace, tmp_path):
    """A descriptor the host opened on a file no mount shows reaches the command at its number, writable; the file
    has no path inside; as root it gives the run a second user, as a private mount does."""
    record = tmp_path / "outside" / "run.json"
    record.parent.mkdir()
    descriptor = os.open(record, os.O_RDWR | os.O_CREAT, 0o600)
    code = f"""
        import os
        os.write({descriptor}, b"written through the descriptor")
        print(os.path.exists({str(record)!r}), os.environ.get("GRADEBENCH_KERNEL_UID") is not None)
    """
    try:
        result = run_py(sandbox, code, workspace, pass_fds=[descriptor])
    finally:
        os.close(descriptor)
    assert result.verdict == "ok", result.stderr
    assert result.stdout.split() == ["False", str(os.geteuid() == 0)]
    assert record.read_text() == "written through the descriptor"


def test_cannot_create_user_namespaces(sandbox, workspace):
    """No user namespace (and so no capabilities in one), also when the harness runs as root; threads still start."""
    code = """
        import ctypes, os, subprocess, threading
        CLONE_NEWUSER = 0x10000000
        libc = ctypes.CDLL(None, use_errno=True)
        print(libc.unshare(CLONE_NEWUSER), os.strerror(ctypes.get_errno()))
        done = subprocess.run(["unshare", "-Ur", "true"], capture_output=True, text=True)
        print(done.returncode, done.stderr.strip())
        thread = threading.Thread(target=print, args=("thread ran",))
        thread.start(); thread.join()
    """
    result = run_py(sandbox, code, workspace)
    assert result.stdout.splitlines() == [
        "-1 Operation not permitted", "1 unshare: unshare failed: Operation not permitted", "thread ran"]


def test_cannot_see_or_signal_host_processes(sandbox, workspace):
    """kill(-1), killing the parent and the process group hurt nothing outside the sandbox."""
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        code = f"""
            import os, signal, sys
            sys.stdout.reconfigure(line_buffering=True)  # it ends by SIGKILL: nothing may wait in a buffer
            print(len([p for p in os.listdir("/proc") if p.isdigit()]))
            for target in ({bystander.pid}, {os.getpid()}, os.getppid()):
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError as error:
                    print(type(error).__name__)
            for kill_all in (lambda: os.kill(-1, signal.SIGKILL), lambda: os.killpg(os.getpgid(0), signal.SIGKILL)):
                try:
                    kill_all()  # every process it may signal, but itself; then its process group
                except OSError as error:
                    print(type(error).__name__)
            os.kill(os.getpid(), signal.SIGKILL)
        """
        result = run_py(sandbox, code, workspace)
        visible, *errors = result.stdout.split()
        assert int(visible) <= 3  # bubblewrap's init and the command itself
        # not found: outside the pid namespace; not permitted: bubblewrap's init (which leads the group)
        assert errors[:3] == ["ProcessLookupError", "ProcessLookupError", "PermissionError"]
        assert result.verdict == "killed" and result.message == "was killed by SIGKILL"
        assert bystander.poll() is None and psutil.Process(os.getpid()).is_running()
    finally:
        bystander.kill()
        bystander.wait()


def test_writes_only_to_workspace_and_private_tmp(sandbox, tmp_path, workspace):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.npy").write_text("data")
    targets = [data / "train.npy", data / "new.txt", Path("/usr/evil.txt"), REPO / "harness" / "evil.py",
               Path("/etc/evil")]
    code = f"""
        import os
        for path in {[str(p) for p in targets]!r}:
            try:
                with open(path, "a") as f:
                    f.write("x")
                print(path, "written")
            except OSError as error:
                print(path, error.strerror)
        open("result.txt", "w").write("mine")
        open("/tmp/scratch.txt", "w").write("scratch")
        print(os.environ["HOME"], os.environ["TMPDIR"])
    """
    result = run_py(sandbox, code, workspace, mounts=[Mount(data, data)])
    assert result.verdict == "ok", result.stderr
    for line, path in zip(result.stdout.splitlines(), targets):
        assert line in (f"{path} Read-only file system", f"{path} Permission denied"), line
    assert result.stdout.splitlines()[-1] == "/tmp /tmp"
    assert (workspace / "result.txt").read_text() == "mine"
    assert (data / "train.npy").read_text() == "data" and not (data / "new.txt").exists()
    assert not Path("/tmp/scratch.txt").exists()
    assert not (REPO / "harness" / "evil.py").exists()


def test_private_tmp_is_size_limited(sandbox, workspace):
    code = """
        for name in ("a", "b"):
            try:
                open(f"/tmp/{name}", "wb").write(b"x" * (6 << 20))
                print(name, "written")
            except OSError as error:
                print(name, error.strerror)
    """
    result = sandbox.run(
        [PY, "-c", textwrap.dedent(code)], workspace=workspace, mounts=python_mounts(),
        limits=Limits(wall_s=20, file_size_bytes=8 << 20),
    )
    assert result.stdout == "a written\nb No space left on device\n"


def test_writable_mount_and_cwd(sandbox, tmp_path, workspace):
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (workspace / "sub").mkdir()
    code = f"""
        import os
        open({str(artifacts / "model.json")!r}, "w").write("{{}}")
        print(os.getcwd())
    """
    result = run_py(sandbox, code, workspace, mounts=[Mount(artifacts, artifacts, writable=True)], cwd=Path("sub"))
    assert result.verdict == "ok", result.stderr
    assert result.stdout.strip() == str(workspace / "sub")
    assert (artifacts / "model.json").read_text() == "{}"


def test_environment_is_minimal(sandbox, workspace, monkeypatch):
    monkeypatch.setenv("GRADEBENCH_TEST_SECRET", "token")
    code = "import os; print(os.environ.get('GRADEBENCH_TEST_SECRET'), os.environ['SEED'], os.environ['LANG'])"
    result = run_py(sandbox, code, workspace, env={"SEED": "7"})
    assert result.stdout == "None 7 C.UTF-8\n"


def test_gpu_devices_only_when_asked(sandbox, workspace, monkeypatch):
    monkeypatch.setattr(bubblewrap_module.glob, "glob", lambda pattern: ["/dev/nvidia0", "/dev/nvidiactl"])
    without, fds = sandbox._argv(["true"], workspace, Limits(), (), workspace, 2_000_000)
    with_gpu, more_fds = sandbox._argv(["true"], workspace, Limits(gpu=True), (), workspace, 2_000_000)
    for fd in fds + more_fds:
        os.close(fd)
    assert "/dev/nvidia0" not in without
    assert with_gpu[with_gpu.index("/dev/nvidia0") - 1] == "--dev-bind"
    assert with_gpu[with_gpu.index("/dev/nvidiactl") - 1] == "--dev-bind"


def test_dies_with_the_harness(sandbox, workspace):
    """If the harness is killed mid-run, the sandboxed processes die with it."""
    script = textwrap.dedent(f"""
        from pathlib import Path
        from harness.models import Limits
        from harness.sandbox import BubblewrapSandbox
        BubblewrapSandbox().run(["sleep", "41.421"], workspace=Path({str(workspace)!r}), limits=Limits(wall_s=60))
    """)
    harness_proc = subprocess.Popen([PY, "-c", script])

    def sleepers():
        return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "41.421"]]

    try:
        deadline = time.monotonic() + 10
        while not sleepers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleepers(), "the sandboxed command never started"
        harness_proc.send_signal(signal.SIGKILL)
        harness_proc.wait()
        deadline = time.monotonic() + 3
        while sleepers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleepers() == []
    finally:
        harness_proc.kill()
        harness_proc.wait()


def test_concurrent_runs(sandbox, tmp_path):
    """Runs from several threads (a batch) do not mix up output or limits."""
    results = {}

    def one(i: int) -> None:
        folder = tmp_path / f"ws{i}"
        folder.mkdir()
        results[i] = run_py(sandbox, f"print({i})", folder)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: (r.verdict, r.stdout) for i, r in results.items()} == {i: ("ok", f"{i}\n") for i in range(4)}


def test_missing_mount_or_workspace_is_a_harness_error(sandbox, tmp_path, workspace):
    with pytest.raises(SandboxError, match="does not exist"):
        missing = tmp_path / "nope"
        sandbox.run(["true"], workspace=workspace, limits=Limits(), mounts=[Mount(missing, missing)])
    with pytest.raises(SandboxError, match="is not a folder"):
        sandbox.run(["true"], workspace=tmp_path / "nope", limits=Limits())


def test_python_mounts_cover_the_interpreter_and_packages_only():
    targets = {m.target for m in python_mounts()}
    assert Path(sys.prefix) in targets and Path(sys.base_prefix) in targets
    assert any(Path(harness.__file__).resolve().is_relative_to(t) for t in targets)
    assert REPO not in targets and all(not m.writable for m in python_mounts())


def test_make_sandbox(sandbox, monkeypatch, caplog):
    assert isinstance(make_sandbox(), BubblewrapSandbox)
    assert isinstance(make_sandbox("bubblewrap"), BubblewrapSandbox)
    with pytest.raises(SandboxError, match=r"no sandbox 'docker'; known: \['auto', 'bubblewrap', 'plain'\]"):
        make_sandbox("docker")
    monkeypatch.setattr(bubblewrap_module.shutil, "which", lambda name, path=None: None)
    with pytest.raises(SandboxError, match="bubblewrap \\(bwrap\\) is not installed"):
        make_sandbox("bubblewrap")
    fallback = make_sandbox("auto")
    assert isinstance(fallback, PlainProcessSandbox) and not fallback.isolated
    assert "NOT isolated" in fallback.warning and "bubblewrap unavailable" in fallback.warning
    assert any(r.levelname == "WARNING" and "NOT isolated" in r.message for r in caplog.records)


def test_broken_bubblewrap_is_reported_at_construction(tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SandboxError, match="bubblewrap cannot run here: bwrap: No permissions to create new namespace"):
        BubblewrapSandbox(bwrap=str(fake))
