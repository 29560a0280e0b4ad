"""The `gradebench` command line: arguments, output and exit codes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import harness.calibrate
from harness.cli import app

runner = CliRunner()


def test_data_prepare_small_synthetic_then_info(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = runner.invoke(
        app, ["data", "prepare", "--data", str(data), "--source", "synthetic", "--small", "-d", "signs"]
    )
    assert result.exit_code == 0, result.output
    assert "signs" in result.output
    assert "synthetic" in result.output
    assert (data / "public" / "sign_data" / "X_train.npy").is_file()

    info = runner.invoke(app, ["data", "info", "--data", str(data)])
    assert info.exit_code == 0, info.output
    assert "train 960" in info.output


def test_data_prepare_rejects_unknown_dataset(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "prepare", "--data", str(tmp_path), "-d", "cifar10"])
    assert result.exit_code == 2
    assert "unknown dataset cifar10" in result.output
    assert "mnist, fashionmnist, signs" in result.output


def test_data_prepare_bad_from_folder_is_a_clear_error(tmp_path: Path) -> None:
    raw = tmp_path / "real" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 12)
    result = runner.invoke(
        app,
        ["data", "prepare", "--data", str(tmp_path / "data"), "--from", str(tmp_path / "real"), "-d", "mnist"],
    )
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    assert "train-images-idx3-ubyte" in result.output


def test_data_info_before_prepare_says_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "info", "--data", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "error:" in result.output


def test_an_error_is_printed_on_one_line_with_its_brackets(tmp_path: Path) -> None:
    """A long path is not wrapped (it could not be copied) and ``[draft]`` is not swallowed as console markup."""
    missing = tmp_path / ("a-folder-name-long-enough-to-pass-the-width-of-any-console-" * 2) / "[draft] data"
    result = runner.invoke(app, ["data", "info", "--data", str(missing)])
    assert result.exit_code == 2
    line = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert str(missing) in line, result.output


def _fake_calibration(tasks: dict) -> dict:
    return {"profile": "fast", "tasks": tasks}


def test_calibrate_prints_every_task_and_fails_when_one_failed(tmp_path: Path, monkeypatch) -> None:
    tasks = {
        "mnist-cnn": {"metrics": {"test_accuracy": 0.9812, "parameters": 12810}, "train_seconds": 3.2},
        "mnist-vae": {"error": "RuntimeError: boom"},
    }
    monkeypatch.setattr(harness.calibrate, "calibrate", lambda *a, **k: _fake_calibration(tasks))
    result = runner.invoke(app, ["calibrate", "--data", str(tmp_path), "--profile", "fast"])
    assert result.exit_code == 1
    assert "mnist-cnn" in result.output
    assert "test_accuracy=0.9812" in result.output
    assert "parameters=12,810" in result.output
    assert "1 task(s) failed: mnist-vae" in result.output


def test_calibrate_succeeds_when_every_task_ran(tmp_path: Path, monkeypatch) -> None:
    tasks = {"mnist-ff": {"metrics": {"test_accuracy": 0.95}, "train_seconds": 1.0}}
    monkeypatch.setattr(harness.calibrate, "calibrate", lambda *a, **k: _fake_calibration(tasks))
    result = runner.invoke(app, ["calibrate", "--data", str(tmp_path), "--profile", "fast"])
    assert result.exit_code == 0, result.output
    assert "calibrated 1 reference tasks" in result.output


def test_python_dash_m_harness_is_the_same_command() -> None:
    done = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "calibrate" in done.stdout
    assert "data" in done.stdout


ROOT = Path(__file__).resolve().parents[1]


def _command_ending_with_a_teardown_probe(*arguments: str) -> subprocess.CompletedProcess[str]:
    """``gradebench ARGUMENTS`` as its console script runs it, with an exit handler that prints when the
    interpreter's teardown runs."""
    code = ("import atexit, sys\nfrom harness.cli import main\n"
            "atexit.register(lambda: print('teardown ran', file=sys.stderr))\n"
            f"sys.argv = ['gradebench', *{list(arguments)!r}]\nmain()\n")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_command_ends_without_the_teardown_and_with_all_it_printed() -> None:
    # after torch and matplotlib the interpreter's teardown is half a second a TA waits for after the work is done
    done = _command_ending_with_a_teardown_probe("--help")
    assert done.returncode == 0, done.stderr
    assert "teardown ran" not in done.stderr
    assert "Grade a batch of submissions" in done.stdout  # piped, so block-buffered: flushed before the end
    assert done.stdout.rstrip().endswith("╯")


def test_a_failed_command_ends_with_its_exit_status_and_whole_message(tmp_path: Path) -> None:
    done = _command_ending_with_a_teardown_probe("grade", str(tmp_path), "--rubric", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert "teardown ran" not in done.stderr
    assert f"error: {tmp_path / 'nope.yaml'}: cannot read the rubric (No such file or directory)" in done.stderr


def test_grade_writes_reports_and_grades_nothing_twice(tmp_path: Path, small_data: Path) -> None:
    data = small_data
    batch = tmp_path / "batch"
    for sample in ("reference", "wrong_flatten"):  # Part 1's notebooks, graded with Part 1's rubric
        (batch / sample).mkdir(parents=True)
        for notebook in ("feedForwardMNIST.ipynb", "CNNMNIST.ipynb"):
            shutil.copy(ROOT / "submissions" / "dl2025-a2" / sample / notebook, batch / sample / notebook)
    command = ["grade", str(batch), "--rubric", str(ROOT / "tests" / "fixtures" / "rubrics" / "dl2025-a2-part1.yaml"),
               "--reference", str(batch / "reference"),
               "--out", str(tmp_path / "out"), "--data", str(data), "--jobs", "2"]
    first = runner.invoke(app, command)
    assert first.exit_code == 0, first.output
    assert "reference: 22.0 / 28.0" in first.output
    assert "wrong_flatten: 18.0 / 28.0" in first.output
    assert "graded 2, unchanged 0, could not load 0" in first.output
    assert (tmp_path / "out" / "index.html").is_file() and (tmp_path / "out" / "gradebook.csv").is_file()
    assert "at once" not in first.output  # --jobs given: nothing to explain
    second = runner.invoke(app, command[:-2])  # no --jobs: one per core, and the command says so
    assert second.exit_code == 0, second.output
    assert re.search(r"grading \d+ submissions? at once \(.*; --jobs N to choose\)", second.output), second.output
    assert "graded 0, unchanged 2, could not load 0" in second.output


def test_grade_with_a_bad_rubric_is_a_clear_error(tmp_path: Path) -> None:
    rubric = tmp_path / "bad.yaml"
    rubric.write_text("assignment: x\ntitle: X\ntasks:\n  - {id: a, title: A, source: a.ipynb, checks: [{check: paramter_count, points: 1}]}\n")
    result = runner.invoke(app, ["grade", str(tmp_path), "--rubric", str(rubric), "--out", str(tmp_path / "out"), "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "bad.yaml: tasks[0] (a) > checks[0] (paramter_count) > check: unknown check 'paramter_count' (did you mean 'parameter_count'?)" in " ".join(result.output.split())


def test_grade_with_a_mistyped_check_parameter_fails_before_grading_anyone(tmp_path: Path) -> None:
    rubric = tmp_path / "typo.yaml"
    rubric.write_text(
        "assignment: x\ntitle: X\ntasks:\n  - id: cnn\n    title: CNN\n    source: a.ipynb\n"
        "    checks: [{check: parameter_count, equals: '12,810', points: 1}]\n"
    )
    result = runner.invoke(app, ["grade", str(tmp_path), "--rubric", str(rubric), "--out", str(tmp_path / "out"), "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "typo.yaml: tasks[0] (cnn) > checks[0] (parameter_count) > equals: expected an integer, got '12,810'" in " ".join(
        result.output.split()
    )
    assert not (tmp_path / "out" / "results.sqlite").exists()


def test_grade_with_pins_naming_an_unknown_task_or_student_fails_before_grading_anyone(tmp_path: Path, small_data: Path) -> None:
    batch = tmp_path / "batch" / "alice"
    batch.mkdir(parents=True)
    shutil.copy(ROOT / "submissions" / "dl2025-a2" / "reference" / "CNNMNIST.ipynb", batch / "cnn_v2.ipynb")
    pins = tmp_path / "pins.yaml"
    command = ["grade", str(batch.parent), "--rubric", str(ROOT / "rubrics" / "dl2025-a2.yaml"), "--pins", str(pins),
               "--out", str(tmp_path / "out"), "--data", str(small_data)]
    pins.write_text("alice: {cnnn: cnn_v2.ipynb}\n")
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert "'cnnn' is not an automatic task of dl2025-a2 (did you mean 'cnn'?)" in " ".join(result.output.split())
    pins.write_text("alise: {cnn: cnn_v2.ipynb}\n")
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert "pins.yaml: no student 'alise' in this batch (did you mean 'alice'?)" in " ".join(result.output.split())
    assert not (tmp_path / "out" / "results.sqlite").exists() or not list((tmp_path / "out").glob("students/*"))


def test_checks_lists_what_each_check_reads() -> None:
    result = runner.invoke(app, ["checks", "figure_kind"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert text.startswith("figure_kind: Check that the code shows ``count`` figures of a kind")
    assert "params.kind ('scatter' | 'scatter3d' | 'images' | 'lines'; required): What the figure must show" in text
    assert "params.count (integer >= 1; default 1): How many such figures the code must show" in text
    every = " ".join(runner.invoke(app, ["checks"]).output.split())
    assert "parameter_count: Check that the model has exactly" in every
    assert "equals (integer >= 1; required): The number of trainable parameters the network must have." in every
    assert "within_budget: Check that the run finished within its time budget" in every and "reads nothing but points" in every
    unknown = runner.invoke(app, ["checks", "paramter_count"])
    assert unknown.exit_code == 2
    assert "no check 'paramter_count'; known: architecture_matches," in " ".join(unknown.output.split())


def test_check_tells_a_student_what_to_fix(tmp_path: Path, monkeypatch, small_data: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = small_data
    notebook = ROOT / "submissions" / "dl2025-a2" / "wrong_flatten" / "CNNMNIST.ipynb"
    result = runner.invoke(app, ["check", str(notebook), "--data", str(data)])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "CNNMNIST.ipynb: 9.0 / 13.0 points (fast profile)" in text
    assert "did you drop a MaxPool2d layer?" in text
    assert "cnn graded CNNMNIST.ipynb: CNNMNIST.ipynb is named as the rubric asks (CNNMNIST.ipynb)" in text
    good = runner.invoke(app, ["check", str(ROOT / "submissions" / "dl2025-a2" / "reference" / "CNNMNIST.ipynb"), "--data", str(data)])
    assert good.exit_code == 0, good.output
    assert "13.0 / 13.0 points" in " ".join(good.output.split())


def test_check_asks_which_rubric_when_a_notebook_fits_two(tmp_path: Path) -> None:
    notebook = tmp_path / "vae.ipynb"
    shutil.copy(ROOT / "submissions" / "adl2024-a2" / "reference" / "vae.ipynb", notebook)
    result = runner.invoke(app, ["check", str(notebook), "--data", str(tmp_path / "data")])
    assert result.exit_code == 2
    assert ("vae.ipynb fits several rubrics equally well; choose one: --rubric rubrics/adl2024-a2.yaml, "
            "--rubric rubrics/dl2025-a2.yaml") in " ".join(result.output.split())
