"""Memory, per-cell time and workspace limits come from the profile, then the rubric's ``limits``, then the command
line."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import RubricError
from harness.models import Limits, MiB
from harness.pipeline import _run_settings, prepare_setup
from harness.rubric import load_rubric
from harness.sandbox import make_sandbox, python_mounts
from harness.sandbox.quota import limited_folder, release_folder
from tests.test_benchmark_verification import RunsNothing

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "tests" / "fixtures" / "rubrics" / "dl2025-a2-part1.yaml"
GiB = 1024**3


def _rubric_with(tmp_path: Path, limits: str) -> Path:
    path = tmp_path / "part1.yaml"
    path.write_text(RUBRIC.read_text(encoding="utf-8") + f"limits: {limits}\n", encoding="utf-8")
    return path


def _cell_timeout(setup) -> float:
    return _run_settings(setup, setup.rubric.automatic_tasks[:1]).cell_timeout_s


def test_without_limits_a_cell_may_use_the_whole_run(tmp_path: Path, small_data: Path) -> None:
    setup = prepare_setup(RUBRIC, small_data, tmp_path / "out", sandbox=RunsNothing(), profile="fast")
    assert setup.limits.memory_bytes == Limits().memory_bytes
    assert _cell_timeout(setup) == _run_settings(setup, setup.rubric.automatic_tasks[:1]).limits.wall_s


def test_the_rubric_sets_memory_and_the_cell_timeout(tmp_path: Path, small_data: Path) -> None:
    rubric = _rubric_with(tmp_path, "{memory: 8GiB, cell_timeout_s: 45}")
    setup = prepare_setup(rubric, small_data, tmp_path / "out", sandbox=RunsNothing(), profile="fast")
    assert setup.limits.memory_bytes == 8 * GiB
    assert _cell_timeout(setup) == 45


def test_the_command_line_overrides_the_rubric(tmp_path: Path, small_data: Path) -> None:
    rubric = _rubric_with(tmp_path, "{memory: 8GiB, cell_timeout_s: 45}")
    setup = prepare_setup(rubric, small_data, tmp_path / "out", sandbox=RunsNothing(), profile="fast",
                          memory_bytes=2 * GiB, cell_timeout_s=20)
    assert (setup.limits.memory_bytes, _cell_timeout(setup)) == (2 * GiB, 20)


def test_a_cell_timeout_longer_than_the_run_is_the_runs(tmp_path: Path, small_data: Path) -> None:
    setup = prepare_setup(RUBRIC, small_data, tmp_path / "out", sandbox=RunsNothing(), profile="fast",
                          cell_timeout_s=100_000)
    settings = _run_settings(setup, setup.rubric.automatic_tasks[:1])
    assert settings.cell_timeout_s == settings.limits.wall_s < 100_000


def test_the_rubric_sets_the_workspace_limit_and_a_run_past_it_is_stopped(tmp_path: Path, small_data: Path) -> None:
    """A course whose notebooks keep large checkpoints raises the working folder's limit in its rubric; as root the
    folder is a tmpfs of that size, and either way a run writing past it is stopped with the limit named."""
    rubric = _rubric_with(tmp_path, "{workspace: 48MiB, workspace_files: 300}")
    setup = prepare_setup(rubric, small_data, tmp_path / "out", sandbox=RunsNothing(), profile="fast")
    limits = _run_settings(setup, setup.rubric.automatic_tasks[:1]).limits
    assert (limits.workspace_bytes, limits.workspace_files) == (48 * MiB, 300)
    folder = tmp_path / "out" / "work" / "alice"
    hard = limited_folder(folder, setup.limits)
    try:
        assert hard == (os.geteuid() == 0)
        code = "block = bytes(1 << 20)\nfor i in range(200):\n    open(f'checkpoint-{i}.pt', 'wb').write(block)\n"
        result = make_sandbox().run([sys.executable, "-c", code], workspace=folder, limits=replace(limits, wall_s=30),
                                    mounts=python_mounts())
        assert (result.verdict, result.message) == ("workspace", "wrote more than 48 MiB into its working folder")
    finally:
        release_folder(folder)
    assert not folder.exists()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ("{memory: lots}", r"limits > memory"),
        ("{cell_timeout_s: 0}", r"limits > cell_timeout_s"),
        ("{memory: 4GiB, wall: 3}", r"limits > wall"),
        ("{workspace: 0}", r"limits > workspace"),
        ("{workspace_files: many}", r"limits > workspace_files"),
    ],
)
def test_bad_limits_in_a_rubric_name_the_field(tmp_path: Path, limits: str, message: str) -> None:
    with pytest.raises(RubricError, match=message):
        load_rubric(_rubric_with(tmp_path, limits))


@pytest.mark.parametrize(
    ("given", "message"),
    [("lots", "'lots' is not a size; write it like 8GiB, 512MiB or 2000000000"),
     ("1MiB", "1MiB is too little for PyTorch to start; give at least 64MiB")],
)
def test_a_memory_option_that_is_not_a_usable_size_is_a_usage_error(tmp_path: Path, given: str, message: str) -> None:
    result = CliRunner().invoke(app, ["grade", str(tmp_path), "--rubric", str(RUBRIC), "--memory", given,
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())  # the error box wraps long lines
