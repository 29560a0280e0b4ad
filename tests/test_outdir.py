"""The output folder: one run at a time, clear errors when it cannot be written, nothing half-made left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.outdir import LOCK_NAME, OutputError, claim_output
from harness.store import ResultStore
from tests.test_store import rich_report

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "tests" / "fixtures" / "rubrics" / "dl2025-a2-part1.yaml"
runner = CliRunner()


def _holding(out: Path) -> subprocess.Popen:
    """Another process that claims ``out`` and keeps it until its standard input closes."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from harness.outdir import claim_output
        with claim_output(Path({str(out)!r}), command="gradebench grade batch --out {out}"):
            print("held", flush=True)
            sys.stdin.read()
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_claim_refuses_and_names_the_first_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = _holding(out)
    try:
        with pytest.raises(OutputError) as refused:
            with claim_output(out):
                pass
        message = str(refused.value)
        assert f"{out} is in use by another gradebench run (pid {holder.pid} since " in message
        assert f"gradebench grade batch --out {out}); wait for it to finish, or give this run another --out" in message
    finally:
        holder.communicate("")
    with claim_output(out):  # released when the first run ended
        assert (out / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} since ")


def test_a_killed_run_leaves_no_stale_lock(tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = _holding(out)
    holder.kill()
    holder.wait()
    with claim_output(out):
        pass


def test_grade_on_a_folder_in_use_refuses_and_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "work" / "alice").mkdir(parents=True)
    (out / "work" / "alice" / "model.pt").write_bytes(b"the first run's workspace")
    holder = _holding(out)
    try:
        result = runner.invoke(
            app, ["grade", str(tmp_path), "--rubric", str(RUBRIC), "--out", str(out), "--data", str(tmp_path / "data")]
        )
    finally:
        holder.communicate("")
    assert result.exit_code == 2, result.output
    assert "is in use by another gradebench run" in " ".join(result.output.split())
    assert (out / "work" / "alice" / "model.pt").read_bytes() == b"the first run's workspace"
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "work"]


def test_a_file_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("not a folder")
    with pytest.raises(OutputError, match="it is a file, not a folder; choose another --out"):
        with claim_output(tmp_path / "results"):
            pass
    with pytest.raises(OutputError, match=r"a file is in the way \(a part of the path is not a folder\)"):
        with claim_output(tmp_path / "results" / "out"):
            pass


def _as_nobody() -> list[str]:
    """A command prefix running as an unprivileged user (root ignores permission bits), or nothing when not root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to test permissions as root")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_grade_into_a_read_only_folder_is_a_clear_error() -> None:
    parent = Path(tempfile.mkdtemp(prefix="gradebench-readonly-"))
    try:
        readonly = parent / "readonly"
        readonly.mkdir()
        os.chmod(parent, 0o755)
        os.chmod(readonly, 0o555)
        out = readonly / "out"
        command = [*_as_nobody(), sys.executable, "-m", "harness", "grade", str(parent), "--rubric", str(RUBRIC),
                   "--out", str(out), "--data", str(parent / "data")]
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
        said = " ".join((result.stdout + result.stderr).split())
        assert result.returncode == 2, said
        assert f"error: cannot write the results to {out}: permission denied; choose another --out" in said
        assert "Traceback" not in said
        assert not out.exists()
    finally:
        os.chmod(parent / "readonly", 0o755)
        shutil.rmtree(parent)


def test_a_failed_first_run_leaves_no_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    result = runner.invoke(
        app, ["grade", str(tmp_path / "batch"), "--rubric", str(RUBRIC), "--out", str(out), "--data", str(tmp_path / "no-data")]
    )
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    assert not (tmp_path / "new").exists()  # nor the parent folder it made for it


def test_a_failed_run_keeps_a_folder_that_existed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "gradebook.csv").write_text("student,score\nalice,3\n")
    result = runner.invoke(
        app, ["grade", str(tmp_path / "batch"), "--rubric", str(RUBRIC), "--out", str(out), "--data", str(tmp_path / "no-data")]
    )
    assert result.exit_code == 2, result.output
    assert (out / "gradebook.csv").read_text() == "student,score\nalice,3\n"


def test_an_interrupted_first_run_keeps_what_it_stored(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with claim_output(out):
            with ResultStore(out / "results.sqlite") as store:
                store.put(rich_report())
            raise KeyboardInterrupt
    with ResultStore(out / "results.sqlite") as store:
        assert len(store) == 1
    with pytest.raises(KeyboardInterrupt):
        with claim_output(tmp_path / "empty"):
            ResultStore(tmp_path / "empty" / "results.sqlite").close()  # opened, nothing stored yet
            raise KeyboardInterrupt
    assert not (tmp_path / "empty").exists()
