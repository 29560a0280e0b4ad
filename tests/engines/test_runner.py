"""The in-sandbox runner, started as a subprocess with the command line the engines give the sandbox.

Real kernels and real scripts on the fixture notebooks; the probe's own logic is tested in-process
in tests/probes/test_probe.py. The parametrised run over every fixture notebook is marked slow.
"""

from __future__ import annotations

import json
import time
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.engines.base import runner_command

FIXTURES = Path(__file__).parents[1] / "fixtures"
EVAL_IMAGES = 50


@dataclass
class Run:
    """What one runner invocation left behind."""

    record: dict[str, Any]
    probe: dict[str, Any] | None
    artifacts: Path
    workspace: Path
    stderr: str

    def model(self, name: str) -> dict[str, Any]:
        assert self.probe is not None, self.record
        return next(m for m in self.probe["models"] if m["name"] == name)



@pytest.fixture(scope="session")
def eval_images(tmp_path_factory, small_mnist) -> Path:
    """The first evaluation images of the hidden split, uint8 (N, 28, 28), without labels."""
    from harness.data import load_split

    images, _ = load_split(small_mnist.parent, "mnist", "hidden")
    path = tmp_path_factory.getbasetemp() / "mnist-eval-images.npy"
    np.save(path, images[:EVAL_IMAGES])
    return path


def run_source(tmp_path: Path, fixture: Path, kind: str, config: dict[str, Any]) -> Run:
    """Copy a fixture into a fresh workspace and run the runner on it as the sandbox would."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    shutil.copy(fixture, workspace / fixture.name)
    artifacts = tmp_path / "artifacts"
    config_path = tmp_path / "config.json"
    # the fields the engine always writes (harness.contract.RunnerConfig), then the test's settings
    config_path.write_text(json.dumps({"format": 1, "kind": kind, "source": fixture.name, "workspace": str(workspace),
                                       **config}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(runner_command(kind, fixture.name, config_path, artifacts), cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    record = json.loads((artifacts / "run.json").read_text())
    probe_path = artifacts / "probe.json"
    probe = json.loads(probe_path.read_text()) if probe_path.exists() else None
    return Run(record, probe, artifacts, workspace, done.stderr)


def base_config(eval_images: Path | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"prefer": ["Net", "model"], "datasets": ["mnist"], "cell_timeout_s": 60,
                              "probe_timeout_s": 60, "threads": 1}
    if eval_images is not None:
        config["eval"] = {"mnist": str(eval_images)}
    return {**config, **extra}


def test_a_weird_root_with_download_reads_the_prepared_data_and_the_trained_cnn_is_probed(
    tmp_path, small_mnist, eval_images
):
    config = base_config(eval_images, data_root=str(small_mnist), task_values=["root_was_created", "first_label"])
    run = run_source(tmp_path, FIXTURES / "notebooks" / "weird_root.ipynb", "notebook", config)
    assert run.record["errors"] == [] and run.record["probe_error"] is None
    assert run.record["cells_run"] == run.record["cells_total"] == 6
    assert len(run.record["cell_seconds"]) == 6
    assert run.probe["task_values"]["root_was_created"] is False
    assert not (run.workspace / "weird").exists()
    model = run.model("model")
    assert (model["class_name"], model["trainable_parameters"]) == ("Net", 12_810)
    assert next(s for s in model["layer_shapes"] if s["type"] == "Flatten")["output_shape"] == [2, 800]
    outputs = torch.load(run.artifacts / model["outputs"]["mnist"], weights_only=True)
    assert outputs.shape == (EVAL_IMAGES, 10)
    assert torch.allclose(outputs.exp().sum(1), torch.ones(EVAL_IMAGES), atol=1e-4)  # LogSoftmax outputs
    assert model["preprocessing"]["mnist"].startswith("student transform (`testset`)")
    assert model["training_mode"] is True  # the notebook never called model.eval(); the probe restored it
    timings = run.record["timings"]
    assert set(timings) == {"kernel_start_s", "setup_s", "cells_s", "probe_s", "total_s"}
    assert (run.artifacts / "executed.ipynb").is_file()


def test_cells_failing_midway_are_recorded_and_the_later_cells_and_the_probe_still_run(tmp_path, eval_images):
    run = run_source(tmp_path, FIXTURES / "notebooks" / "fails_midway.ipynb", "notebook",
                     base_config(eval_images, task_values=["after_errors"]))
    errors = [(e["cell"], e["ename"], e["evalue"]) for e in run.record["errors"]]
    assert errors == [
        (1, "NameError", "name 'undefined_name' is not defined"),
        (3, "ZeroDivisionError", "division by zero"),
    ]
    assert run.record["errors"][0]["source_excerpt"] == "print(undefined_name)"
    assert "NameError" in run.record["errors"][0]["traceback"] and "\x1b[" not in run.record["errors"][0]["traceback"]
    assert run.record["cells_run"] == run.record["cells_total"] == 5
    assert run.probe["task_values"] == {"after_errors": "the cell after the errors ran"}
    assert run.model("model")["outputs"]["mnist"]


def test_a_syntax_error_fails_only_its_own_cell(tmp_path):
    run = run_source(tmp_path, FIXTURES / "notebooks" / "syntax_error.ipynb", "notebook", base_config())
    assert [(e["cell"], e["ename"]) for e in run.record["errors"]] == [(1, "SyntaxError")]
    assert run.record["errors"][0]["source_excerpt"] == "def broken(:\n    return 1"
    # the line as the student wrote it, not IPython's temporary file name (``3809694872.py, line 1``)
    assert run.record["errors"][0]["evalue"].endswith("(line 1 of the cell: `def broken(:`)")
    assert run.model("model")["trainable_parameters"] == 7_850


def test_a_cell_over_the_timeout_is_interrupted_and_the_next_cells_run(tmp_path):
    run = run_source(tmp_path, FIXTURES / "notebooks" / "slow_cell.ipynb", "notebook",
                     base_config(cell_timeout_s=2, task_values=["after_timeout"]))
    assert run.record["timed_out_cell"] == 1
    assert [(e["cell"], e["ename"]) for e in run.record["errors"]] == [(1, "TimeoutError")]
    assert "longer than 2 s" in run.record["errors"][0]["evalue"]
    assert run.record["cells_run"] == 3 and run.record["probe_error"] is None
    assert 2 <= run.probe["task_values"]["after_timeout"] < 30


def test_a_cell_flooding_its_output_is_stopped_and_the_run_goes_on(tmp_path):
    run = run_source(tmp_path, FIXTURES / "notebooks" / "chatty_cell.ipynb", "notebook",
                     base_config(task_values=["after_output"], output_bytes=1024**2))
    assert run.record["outputs_cut"] == run.record["outputs_flooded"] == [0]
    assert [(e["cell"], e["ename"], e["evalue"]) for e in run.record["errors"]] == [
        (0, "OutputFlood", "printed more than 1 MiB of output (an output flood) and was stopped")]
    assert run.record["kernel_died"] is None, run.record["kernel_died"]
    assert run.probe["task_values"] == {"after_output": "still running"}
    assert (run.artifacts / "executed.ipynb").stat().st_size < 100_000


def test_a_dead_kernel_is_recorded_and_the_probe_is_skipped_with_the_reason(tmp_path):
    run = run_source(tmp_path, FIXTURES / "notebooks" / "kernel_dies.ipynb", "notebook", base_config())
    assert run.record["kernel_died"] == {"cell": 1, "signal": None,
                                         "message": "the kernel exited with status 3 (exit(), os._exit() or a crash)"}
    assert run.record["probe_skipped"] == "the kernel died in cell 1"
    assert run.record["cells_run"] == 2 and run.record["cells_total"] == 3
    assert [e["ename"] for e in run.record["errors"]] == ["DeadKernelError"]
    assert run.probe is None


def write_notebook(path: Path, *sources: str) -> Path:
    """A notebook of code cells written as JSON escapes, so a source may hold text no encoder accepts."""
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s} for s in sources]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(notebook, ensure_ascii=True), encoding="ascii")
    return path


def test_lone_surrogates_fail_their_cells_and_are_shown_escaped(tmp_path):
    notebook = write_notebook(tmp_path / "surrogates.ipynb", "x = 1", "s = '\ud800'", "raise ValueError('\\ud800')",
                              "after_surrogates = 'still running'")
    (tmp_path / "run").mkdir()
    run = run_source(tmp_path / "run", notebook, "notebook", base_config(task_values=["after_surrogates"]))
    assert [(e["cell"], e["ename"], e["evalue"]) for e in run.record["errors"]] == [
        (1, "UnicodeError", "the cell holds \\ud800, a lone surrogate that is not valid text (line 1), so it could not "
                            "be run: remove that character"),
        (2, "ValueError", "\\ud800"),
    ]
    assert run.record["errors"][0]["source_excerpt"] == "s = '\\ud800'"
    assert (run.record["cells_run"], run.record["setup_error"]) == (4, None)
    assert run.probe["task_values"] == {"after_surrogates": "still running"}


@pytest.mark.parametrize(("code", "signal_name", "cause"), [
    ("import ctypes\nctypes.string_at(0)", "SIGSEGV", "a segmentation fault"),
    ("import os\nos.abort()", "SIGABRT", "an abort"),
])
def test_a_crashing_kernel_is_named_by_its_signal(tmp_path, code, signal_name, cause):
    notebook = write_notebook(tmp_path / "crash.ipynb", "x = 1", code, "y = 2")
    (tmp_path / "run").mkdir()
    run = run_source(tmp_path / "run", notebook, "notebook", base_config())
    message = f"the kernel was killed by {signal_name} ({cause})"
    assert run.record["kernel_died"] == {"cell": 1, "message": message, "signal": signal_name}
    assert [(e["cell"], e["ename"], e["evalue"]) for e in run.record["errors"]] == [(1, "DeadKernelError", message)]
    assert (run.record["cells_run"], run.record["cells_total"]) == (2, 3)


def test_a_file_that_is_not_a_notebook_is_recorded_not_crashed_on(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ not json")
    (tmp_path / "run").mkdir()
    run = run_source(tmp_path / "run", broken, "notebook", base_config())
    assert run.record["errors"][0]["ename"] == "NotebookError"
    assert "broken.ipynb could not be read as a notebook" in run.record["errors"][0]["evalue"]
    assert run.record["probe_skipped"] == "the notebook could not be read"


DEAF_FLOOD = ("import sys\nfrom ipykernel.iostream import OutStream\n"
              "while True:  # around the output cap, and deaf to the interrupt\n"
              "    try:\n        OutStream.write(sys.stdout, 'x' * 10**5)\n        sys.stdout.flush()\n"
              "    except KeyboardInterrupt:\n        pass")
DEAF_SLEEPER = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('x' * 2_000_000)\ntime.sleep(60)"


@pytest.mark.parametrize(("code", "why"), [
    (DEAF_FLOOD, "it kept printing after an output flood"),
    # an interrupt the kernel cannot act on (here: ignored) held the run until the cell's timeout (60 s here)
    (DEAF_SLEEPER, "the cell did not stop after an output flood"),
], ids=["keeps_printing", "neither_prints_nor_ends"])
def test_a_flooded_cell_that_does_not_stop_gets_its_kernel_stopped(tmp_path, code, why):
    notebook = write_notebook(tmp_path / "deaf.ipynb", "x = 1", code, "y = 2")
    (tmp_path / "run").mkdir()
    started = time.monotonic()
    run = run_source(tmp_path / "run", notebook, "notebook", base_config(output_bytes=1024**2))
    assert time.monotonic() - started < 40
    assert run.record["kernel_died"] == {"cell": 1, "message": f"the kernel was stopped because {why}", "signal": None}
    assert [(e["cell"], e["ename"]) for e in run.record["errors"]] == [(1, "OutputFlood")]
    assert run.record["outputs_flooded"] == [1] and run.record["timed_out_cell"] is None
    assert run.record["probe_skipped"] == "the kernel was stopped after an output flood in cell 1"


def test_output_sent_before_the_interrupt_but_read_after_the_grace_does_not_stop_the_kernel(monkeypatch):
    """On a loaded machine the runner reads, seconds after the interrupt, what the kernel printed before it: only
    output the kernel sent after the grace counts as printing on (CI: a flood test's kernel was stopped for that)."""
    from datetime import datetime, timezone

    import nbformat

    import harness.engines.runner as runner

    monkeypatch.setattr(runner, "FLOOD_GRACE_S", 0.2)
    client = runner._bounded_client_class()(nbformat.v4.new_notebook(), flood_bytes=500)
    signals: list[int] = []
    monkeypatch.setattr(client, "_signal_kernel", signals.append)

    def printed(sent: float) -> dict:
        header = {"date": datetime.fromtimestamp(sent, timezone.utc), "msg_type": "stream"}
        return {"msg_type": "stream", "header": header, "parent_header": {}, "metadata": {},
                "content": {"name": "stdout", "text": "x" * 600}}

    client.running = 1
    client.output([], printed(time.time()), None, 1)  # the flood: past the cap, the kernel is interrupted
    interrupted = time.time()
    client.running = None  # the grace's timer is left out of this test: only what output() decides is judged
    time.sleep(0.3)  # past the grace, the backlog is still being read
    client.output([], printed(interrupted - 0.05), None, 1)
    assert 1 not in client.flood_killed
    client.output([], printed(time.time()), None, 1)  # sent after the grace: it really prints on
    assert client.flood_killed == {1: "it kept printing after an output flood"}
    assert signals[0] == 2 and signals[-1] == 9  # SIGINT, then SIGKILL


def test_a_flooded_cell_the_kernel_has_replied_to_is_not_stopped_while_its_last_output_is_awaited(monkeypatch):
    """After the kernel's reply to an interrupted cell, nbclient may still wait for the cell's last output (a flood
    on a loaded machine can lose the kernel's "idle" message); the grace's timer must not stop that kernel."""
    import nbformat

    import harness.engines.runner as runner

    monkeypatch.setattr(runner, "FLOOD_GRACE_S", 0.1)
    client = runner._bounded_client_class()(nbformat.v4.new_notebook(), flood_bytes=500)
    signals: list[int] = []
    monkeypatch.setattr(client, "_signal_kernel", signals.append)
    cells = {name: nbformat.v4.new_code_cell("print('x' * 600)") for name in ("replied", "silent")}
    cells["replied"].metadata["execution"] = {"shell.execute_reply": "2026-12-06T00:00:00Z"}
    flood = {"msg_type": "stream", "header": {}, "content": {"name": "stdout", "text": "x" * 600}}
    stopped = {}
    for name, cell in cells.items():
        signals.clear()
        client.running, client.running_cell = 1, cell
        client.flooded.clear(), client.flood_killed.clear(), client.printed_bytes.clear()
        client.output([], flood, None, 1)
        time.sleep(0.6)  # past both stages of the grace
        stopped[name] = (list(signals), dict(client.flood_killed))
    client.running = None
    assert stopped["replied"] == ([2], {})  # the flood's interrupt only
    assert stopped["silent"] == ([2, 2, 9], {1: "the cell did not stop after an output flood"})


def test_a_flooded_cell_deaf_to_the_first_interrupt_is_stopped_by_the_second_and_the_run_goes_on(tmp_path):
    code = ("import signal, time\ncalls = []\n"
            "def first_ignored(number, frame):\n    calls.append(number)\n    if len(calls) > 1:\n"
            "        raise KeyboardInterrupt\n"
            "signal.signal(signal.SIGINT, first_ignored)\nprint('x' * 2_000_000)\ntime.sleep(60)")
    notebook = write_notebook(tmp_path / "half_deaf.ipynb", "x = 1", code, "after_output = 'still running'")
    (tmp_path / "run").mkdir()
    started = time.monotonic()
    run = run_source(tmp_path / "run", notebook, "notebook",
                     base_config(output_bytes=1024**2, task_values=["after_output"]))
    assert time.monotonic() - started < 40
    assert run.record["kernel_died"] is None and run.record["timed_out_cell"] is None
    assert [(e["cell"], e["ename"]) for e in run.record["errors"]] == [(1, "OutputFlood")]
    assert run.probe["task_values"] == {"after_output": "still running"}


def test_a_script_flooding_its_output_is_stopped_and_still_probed(tmp_path):
    script = tmp_path / "flood.py"
    script.write_text("import torch\nnet = torch.nn.Linear(2, 2)\nwhile True:\n    print('x' * 10**6)\n")
    (tmp_path / "run").mkdir()
    run = run_source(tmp_path / "run", script, "script", base_config(output_bytes=1024**2))
    assert [(e["cell"], e["ename"], e["evalue"]) for e in run.record["errors"]] == [
        (-1, "OutputFlood", "printed more than 1 MiB of output (an output flood) and was stopped")]
    assert run.record["outputs_flooded"] == [-1] and run.record["probe_error"] is None
    assert [m["name"] for m in run.probe["models"]] == ["net"]


def test_a_script_that_raises_is_recorded_and_what_it_defined_is_still_probed(tmp_path):
    run = run_source(tmp_path, FIXTURES / "scripts" / "raises_after_model.py", "script", base_config())
    [error] = run.record["errors"]
    assert (error["cell"], error["ename"], error["evalue"]) == (-1, "RuntimeError", "training crashed")
    assert error["source_excerpt"] == 'line 6: raise RuntimeError("training crashed")'
    assert "runner.py" not in error["traceback"]
    assert run.model("model")["trainable_parameters"] == 7_850


EXPECTED = {
    "reference_cnn.ipynb": ("model", "instance", 12_810, 800, None),
    "cnn_named_cnnnet.ipynb": ("cnn_model", "instance", 12_810, 800, None),
    "inline_sequential.ipynb": ("model", "instance", 12_810, 800, None),
    "wrong_flatten.ipynb": (
        "model", "instance", 12_810, 3_872, "mat1 and mat2 shapes cannot be multiplied (2x3872 and 800x10)"
    ),
    "wrong_flatten_3872.ipynb": ("model", "instance", 43_530, 3_872, None),
    "softmax_nll.ipynb": ("model", "instance", 109_386, None, None),
    "class_only.ipynb": ("Net", "class", 12_810, 800, None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture_notebook_in_a_real_kernel(tmp_path, small_mnist, eval_images, name):
    run = run_source(tmp_path, FIXTURES / "notebooks" / name, "notebook",
                     base_config(eval_images, data_root=str(small_mnist)))
    model_name, origin, parameters, flatten, forward_error = EXPECTED[name]
    model = run.model(model_name)
    assert (model["origin"], model["trainable_parameters"]) == (origin, parameters)
    widths = [s["output_shape"][1] for s in model["layer_shapes"] if s["type"] == "Flatten"]
    assert widths == ([flatten] if flatten else [])
    if forward_error:
        assert forward_error in model["forward_error"]
        assert [e["ename"] for e in run.record["errors"]] == ["RuntimeError"]  # the training cell
    else:
        assert model["forward_error"] is None and run.record["errors"] == []
    assert bool(model["outputs"]) == (origin == "instance" and not forward_error)


def test_a_script_saved_with_a_byte_order_mark_runs_once_staged(tmp_path):
    from harness.loading import load_submission
    from harness.models import Submission

    saved = tmp_path / "q1.py"
    # Run as saved, the runner stops at once: "invalid non-printable character U+FEFF".
    saved.write_bytes(b"\xef\xbb\xbfimport torch\nmodel = torch.nn.Linear(784, 10)\n")
    submission = load_submission(saved, tmp_path / "staging")
    assert isinstance(submission, Submission), submission
    (tmp_path / "run").mkdir()
    run = run_source(tmp_path / "run", submission.root / "q1.py", "script", base_config())
    assert run.record["errors"] == []
    assert run.model("model")["trainable_parameters"] == 7_850


def test_records_written_through_descriptors_stay_whole_and_are_not_inherited(tmp_path):
    """The runner's record descriptors: never inherited by what it starts, and each write replaces the whole file
    (a shorter record after a longer one leaves no tail of the old one)."""
    from harness.engines.runner import RecordDescriptors, write_record

    descriptors = {name: os.open(tmp_path / name, os.O_RDWR | os.O_CREAT) for name in ("run.json", "executed.ipynb")}
    try:
        for descriptor in descriptors.values():
            os.set_inheritable(descriptor, True)  # as bubblewrap hands them on
        records = RecordDescriptors(descriptors)
        assert not any(os.get_inheritable(d) for d in descriptors.values())
        write_record(records, {"errors": ["x" * 5_000]})
        write_record(records, {"errors": []})
    finally:
        for descriptor in descriptors.values():
            os.close(descriptor)
    assert json.loads((tmp_path / "run.json").read_text()) == {"errors": []}
