"""The engines on the host: workspace, config, mounts, the sandboxed run, and run.json read back."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.artifacts import load_artifacts
from harness.engines import Engine, RunSettings, kind_for, read_run_json
from harness.errors import HarnessError
from harness.models import GiB, Limits, MiB, SandboxResult, Submission
from harness.sandbox import make_sandbox
from reference.classifiers import CNN

FIXTURES = Path(__file__).parents[1] / "fixtures"
EVAL_IMAGES = 40



@pytest.fixture(scope="session")
def eval_images(tmp_path_factory, small_data) -> Path:
    """Hidden-split images without their labels, as the grader hands them to a run."""
    from harness.data import load_split

    images, _ = load_split(small_data, "mnist", "hidden")
    path = tmp_path_factory.getbasetemp() / "engine-eval" / "mnist-images.npy"
    path.parent.mkdir(exist_ok=True)
    np.save(path, images[:EVAL_IMAGES])
    return path


def stage(tmp_path: Path, fixture: Path) -> Submission:
    """A one-file submission staged as the loader would."""
    root = tmp_path / "submission"
    root.mkdir()
    shutil.copy(fixture, root / fixture.name)
    kind = "notebook" if fixture.suffix == ".ipynb" else "module"
    return Submission(student="student_1", source=fixture, root=root, files=(fixture.name,), kind=kind,
                      content_hash="0" * 64)


def test_one_engine_runs_both_kinds_of_source():
    assert (kind_for("CNNMNIST.ipynb"), kind_for("pkg/train.py"), kind_for("Q1.PY")) == ("notebook", "script", "script")
    assert Engine(None, "script").command("q1.py", Path("c.json"), Path("a"), Path("r"))[1:] == [
        "-P", "-m", "harness.engines.runner",
        "--kind", "script", "--source", "q1.py", "--config", "c.json", "--artifacts", "a", "--records", "r"]
    with pytest.raises(HarnessError, match=r"^no engine 'papermill'; known: notebook, script$"):
        Engine(None, "papermill")
    with pytest.raises(HarnessError, match="only notebooks"):
        kind_for("report.pdf")


def test_a_notebook_runs_in_the_sandbox_and_its_artifacts_load_on_the_host(tmp_path, small_data, eval_images):
    submission = stage(tmp_path, FIXTURES / "notebooks" / "reference_cnn.ipynb")
    sandbox = make_sandbox()
    settings = RunSettings(limits=Limits(wall_s=240), cell_timeout_s=120, data_dir=small_data,
                           eval_images={"mnist": eval_images}, prefer=("Net", "model"))
    result = Engine(sandbox, "notebook").run(submission, "reference_cnn.ipynb", tmp_path / "out", settings)
    assert result.sandbox.verdict == "ok", result.sandbox.stderr[-3000:]
    assert (result.cells_run, result.cells_total, result.errors) == (6, 6, ())
    assert result.artifacts_dir == (tmp_path / "out" / "artifacts").resolve()
    artifacts = load_artifacts(result.artifacts_dir)
    [model] = artifacts.models
    assert (model.name, model.class_name, model.trainable_parameters) == ("model", "Net", 12_810)
    assert next(s for s in model.layer_shapes if s.type == "Flatten").output_shape == (2, 800)
    assert artifacts.load_tensor(model.outputs["mnist"]).shape == (EVAL_IMAGES, 10)
    assert set(artifacts.load_tensor(model.state_dict)) == {"main.0.weight", "main.0.bias", "main.3.weight",
                                                               "main.3.bias", "main.7.weight", "main.7.bias"}
    assert [p.name for p in artifacts.figures] == ["0.png"]
    assert [(loss.name, loss.type) for loss in artifacts.probe.losses] == [("criterion", "NLLLoss")]
    # the host can re-evaluate the exported weights in the reference module (as the checks do)
    reference = CNN()
    reference.load_state_dict(artifacts.load_tensor(model.state_dict))
    with torch.inference_mode():
        recomputed = reference.eval()(artifacts.load_tensor(model.inputs["mnist"]))
    assert torch.allclose(recomputed, artifacts.load_tensor(model.outputs["mnist"]), atol=1e-5)
    # the student's copy ran in its own workspace; the staged submission is untouched
    assert sorted(p.name for p in submission.root.iterdir()) == ["reference_cnn.ipynb"]
    if sandbox.isolated:
        config = json.loads((tmp_path / "out" / "runner-config.json").read_text())
        assert config["eval"] == {"mnist": "/gradebench/eval/mnist-images.npy"}
        assert config["data_root"] == "/gradebench/data"
        assert config["input_shapes"] == [[1, 28, 28], [784]]


def test_a_script_runs_in_the_sandbox_as_main_and_its_model_and_figure_are_probed(tmp_path, eval_images):
    submission = stage(tmp_path, FIXTURES / "scripts" / "cnn_script.py")
    settings = RunSettings(limits=Limits(wall_s=240), eval_images={"mnist": eval_images}, prefer=("Net",),
                           task_values=("argv_seen",))
    result = Engine(make_sandbox(), "script").run(submission, "cnn_script.py", tmp_path / "out", settings)
    assert result.sandbox.verdict == "ok", result.sandbox.stderr[-3000:]
    assert (result.cells_run, result.cells_total, result.errors) == (1, 1, ())
    artifacts = load_artifacts(result.artifacts_dir)
    [model] = artifacts.models
    assert (model.name, model.class_name, model.trainable_parameters) == ("model", "Net", 12_810)
    assert artifacts.load_tensor(model.outputs["mnist"]).shape == (EVAL_IMAGES, 10)
    assert artifacts.probe.task_values["argv_seen"] == ["cnn_script.py"]
    assert artifacts.probe.figures == ("figures/0.png",) and len(artifacts.figures) == 1
    assert artifacts.probe.optimizers[0].type == "Adam"


@pytest.mark.slow
def test_a_run_killed_by_the_wall_limit_keeps_its_progress(tmp_path):
    submission = stage(tmp_path, FIXTURES / "notebooks" / "slow_cell.ipynb")
    settings = RunSettings(limits=Limits(wall_s=15), cell_timeout_s=None)
    result = Engine(make_sandbox(), "notebook").run(submission, "slow_cell.ipynb", tmp_path / "out", settings)
    assert result.sandbox.verdict == "timeout"
    run = read_run_json(result.artifacts_dir)
    assert (run.cells_run, run.running_cell, result.cells_total) == (1, 1, 3)


def test_student_code_cannot_read_the_runners_memory_or_environment(tmp_path):
    """The runner is not dumpable: a cell of the same uid cannot open its /proc/<pid>/mem or environ to forge run.json."""
    import nbformat

    from harness.sandbox import BubblewrapSandbox

    if not os.environ.get("CI") and shutil.which("bwrap") is None:
        pytest.skip("needs bubblewrap (in CI this fails)")
    code = (
        "import os\n"
        "def attempt(name):\n"
        "    try:\n"
        "        with open(f'/proc/{os.getppid()}/{name}', 'rb') as f:\n"
        "            return 'read: ' + repr(f.read(40))\n"
        "    except OSError as error:\n"
        "        return f'blocked: {type(error).__name__}'\n"
        "runner_cmdline = open(f'/proc/{os.getppid()}/cmdline', 'rb').read().split(b'\\0')[:4]\n"
        "attempts = {name: attempt(name) for name in ('mem', 'environ')}"
    )
    notebook = tmp_path / "peek.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), str(notebook))
    submission = stage(tmp_path, notebook)
    settings = RunSettings(limits=Limits(wall_s=120), task_values=("attempts", "runner_cmdline"))
    result = Engine(BubblewrapSandbox(), "notebook").run(submission, "peek.ipynb", tmp_path / "out", settings)
    assert (result.sandbox.verdict, result.errors) == ("ok", ())
    values = load_artifacts(result.artifacts_dir).probe.task_values
    assert "harness.engines.runner" in str(values["runner_cmdline"])  # the parent really is the runner
    assert values["attempts"] == {"mem": "blocked: PermissionError", "environ": "blocked: PermissionError"}


def test_printing_gigabytes_in_a_cell_is_an_output_flood_not_the_memory_limit(tmp_path):
    """The kernel drops what a cell prints past the output limit and the runner stops the cell: memory stays low."""
    import nbformat

    cells = ["x = 1", "while True:\n    print('x' * 10**6)", "after_flood = 'still running'"]
    notebook = tmp_path / "flood.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), str(notebook))
    submission = stage(tmp_path, notebook)
    limits = Limits(wall_s=120, memory_bytes=2 * GiB, output_bytes=1 * MiB)
    settings = RunSettings(limits=limits, cell_timeout_s=60, task_values=("after_flood",))
    result = Engine(make_sandbox(), "notebook").run(submission, "flood.ipynb", tmp_path / "out", settings)
    assert result.sandbox.verdict == "ok", result.sandbox.message
    assert [(e.cell, e.ename, e.evalue) for e in result.errors] == [
        (1, "OutputFlood", "printed more than 1 MiB of output (an output flood) and was stopped")]
    assert result.sandbox.peak_memory_bytes < 1 * GiB and result.sandbox.wall_s < 50
    assert load_artifacts(result.artifacts_dir).probe.task_values == {"after_flood": "still running"}


def test_a_source_outside_the_submission_is_refused(tmp_path):
    submission = stage(tmp_path, FIXTURES / "scripts" / "cnn_script.py")
    with pytest.raises(HarnessError, match="other.py is not among the submission's files"):
        Engine(make_sandbox(), "script").run(submission, "other.py", tmp_path / "out", RunSettings())


class RecordingSandbox:
    """Stands in for a sandbox: records the call and writes what a runner would have written."""

    isolated = True
    warning = ""

    def __init__(self, run_json: str | None) -> None:
        self.run_json = run_json
        self.calls: list[dict] = []

    def run(self, command, *, workspace, limits, mounts=(), env=None, cwd=None, stdin=None) -> SandboxResult:
        self.calls.append({"command": list(command), "workspace": workspace, "mounts": list(mounts), "env": env})
        records = Path(command[command.index("--records") + 1])
        if self.run_json is not None:
            (records / "run.json").write_text(self.run_json)
        return SandboxResult("ok", "exit code 0", 0, 0.1, 0.1, 0, "", "", True)


def test_the_command_mounts_and_environment_the_engine_builds(tmp_path, small_data, eval_images):
    submission = stage(tmp_path, FIXTURES / "notebooks" / "class_only.ipynb")
    sandbox = RecordingSandbox(None)
    settings = RunSettings(data_dir=small_data, eval_images={"mnist": eval_images}, threads=2, datasets=("signs",))
    result = Engine(sandbox, "notebook").run(submission, "class_only.ipynb", tmp_path / "out", settings)
    [call] = sandbox.calls
    assert call["command"][1:6] == ["-P", "-m", "harness.engines.runner", "--kind", "notebook"]
    mounts = {str(m.target): m for m in call["mounts"]}
    assert mounts["/gradebench/data"].source == (small_data / "public").resolve()
    assert not mounts["/gradebench/data"].writable
    assert mounts["/gradebench/eval/mnist-images.npy"].source == eval_images.resolve()
    assert mounts[str((tmp_path / "out" / "artifacts").resolve())].writable
    records = mounts[str((tmp_path / "out" / "records").resolve())]
    assert records.writable and records.private  # the runner's own: out of reach of the student's code
    assert not any("hidden" in str(m.source) for m in call["mounts"])  # the labels never enter the sandbox
    assert call["env"]["OMP_NUM_THREADS"] == "2" and call["env"]["WANDB_MODE"] == "disabled"
    # no run.json: the run died before the runner started; nothing is made up
    assert (result.cells_run, result.cells_total, result.errors, result.artifacts_dir) == (0, 0, (), None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        (json.dumps({"format": 1, "source": "a.ipynb", "kind": "notebook", "cells_total": "3", "cells_run": 1,
                     "errors": []}),
         "cells_total is str, expected int"),
        (json.dumps({"format": 1, "source": "a.ipynb", "kind": "notebook", "cells_total": 3, "cells_run": 1,
                     "errors": [{"cell": "x"}]}),
         r"errors\[0\]\.cell is str, expected int"),
        (json.dumps({"format": 1, "source": "a.ipynb", "kind": "notebook", "cells_total": 3, "cells_run": 1,
                     "errors": [], "missing_packages": ["os; rm -rf /"]}),
         r"missing_packages\[0\] is not a module name"),
    ],
)
def test_a_malformed_run_json_is_a_harness_error(tmp_path, text, message):
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(HarnessError, match=message):
        read_run_json(tmp_path)


def test_run_json_errors_are_capped(tmp_path):
    entry = {"cell": 0, "ename": "E" * 1_000, "evalue": "v" * 5_000, "source_excerpt": "s"}
    record = {"format": 1, "source": "a.ipynb", "kind": "notebook", "cells_total": 1, "cells_run": 1,
              "errors": [entry] * 300}
    (tmp_path / "run.json").write_text(json.dumps(record))
    run = read_run_json(tmp_path)
    assert len(run.errors) == 200
    assert len(run.errors[0].ename) == 200 and len(run.errors[0].evalue) == 2_000


FORGED_RUN = {"format": 1, "source": "forge.ipynb", "kind": "notebook", "cells_total": 3, "cells_run": 3, "errors": []}

FORGER = '''
import json, os, subprocess, sys, time
runner = open(f"/proc/{os.getppid()}/cmdline", "rb").read().decode().split("\\0")
artifacts = runner[runner.index("--artifacts") + 1]
descriptors = [f"/proc/{os.getppid()}/fd/{n}" for n in runner[runner.index("--record-fds") + 1].split(",")]
forged = json.dumps(FORGED)
rewriter = """
import os, sys, time
artifacts, forged, descriptors = sys.argv[1], sys.argv[2], sys.argv[3:]
for _ in range(3000):  # about 30 s: past the end of the run, whose sandbox then kills it
    for path in [os.path.join(artifacts, n) for n in ("run.json", "executed.ipynb")] + descriptors:
        try:
            os.unlink(path)
        except OSError:
            pass
        try:
            with open(path, "w") as f:
                f.write(forged)
        except OSError:
            pass
    time.sleep(0.01)
"""
subprocess.Popen([sys.executable, "-c", rewriter, artifacts, forged, *descriptors], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def attempt(path):
    try:
        with open(path, "w") as f:
            f.write(forged)
        return "written"
    except OSError as error:
        return f"blocked: {type(error).__name__}"
def target(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""
def trace_runner():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, os.getppid(), None, None) == 0:  # PTRACE_ATTACH
        libc.ptrace(17, os.getppid(), None, None)  # PTRACE_DETACH: let the runner go on
        return "attached"
    return f"blocked: {os.strerror(ctypes.get_errno())}"
def read_runner_memory():
    try:
        with open(f"/proc/{os.getppid()}/mem", "rb") as f:
            f.read(1)
        return "read"
    except OSError as error:
        return f"blocked: {type(error).__name__}"
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
runner_uid = open(f"/proc/{os.getppid()}/status").read().split("Uid:")[1].split()[0]
seen = {"runner_descriptors": [attempt(path) for path in descriptors], "ptrace": trace_runner(),
        "runner_memory": read_runner_memory(),
        "kernel_holds_records": any(target(fd).endswith(("/run.json", "/executed.ipynb"))
                                    for fd in os.listdir("/proc/self/fd")),
        "kernel_is_runner": str(os.getuid()) == runner_uid, "capabilities": status["CapEff"].strip()}
'''.replace("FORGED", repr(FORGED_RUN))
FORGER_CELLS = [FORGER, "time.sleep(1)\nraise ValueError('the real error')", "time.sleep(1)"]

UNPRIVILEGED = '''
import json, sys
from pathlib import Path
import nbformat
from harness.artifacts import load_artifacts
from harness.engines import Engine, RunSettings
from harness.models import Limits, Submission
from harness.sandbox import BubblewrapSandbox
import os
from harness.errors import SandboxError
try:
    sandbox = BubblewrapSandbox()
except SandboxError as error:  # a kernel that forbids unprivileged user namespaces: no bubblewrap without root
    print(json.dumps({"skip": str(error)}))
    sys.exit(0)
assert os.geteuid() != 0 and not sandbox.as_root  # the grader is not root here
folder = Path(sys.argv[1])
root = folder / "submission"
root.mkdir()
cells = json.loads(sys.argv[2])
nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), str(root / "forge.ipynb"))
submission = Submission(student="s", source=root / "forge.ipynb", root=root, files=("forge.ipynb",), kind="notebook",
                        content_hash="0" * 64)
settings = RunSettings(limits=Limits(wall_s=120), task_values=("seen",))
result = Engine(sandbox, "notebook").run(submission, "forge.ipynb", folder / "out", settings)
artifacts = load_artifacts(result.artifacts_dir)
print(json.dumps({"verdict": result.sandbox.verdict, "message": result.sandbox.message, "cells": [result.cells_run,
                  result.cells_total], "errors": [[e.cell, e.ename, e.evalue] for e in result.errors],
                  "on_disk": [[e.cell, e.ename, e.evalue] for e in artifacts.run.errors],
                  "seen": artifacts.probe.task_values["seen"], "records_left": (folder / "out" / "records").exists()}))
'''


def _forge_as_root(tmp_path: Path) -> dict:
    """Run the forging notebook as the grader runs it here (root): the kernel is a user of its own."""
    import nbformat

    from harness.sandbox import BubblewrapSandbox

    notebook = tmp_path / "forge.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in FORGER_CELLS]), str(notebook))
    result = Engine(BubblewrapSandbox(), "notebook").run(
        stage(tmp_path, notebook), "forge.ipynb", tmp_path / "out", RunSettings(limits=Limits(wall_s=120),
                                                                                task_values=("seen",)))
    artifacts = load_artifacts(result.artifacts_dir)
    return {"verdict": result.sandbox.verdict, "message": result.sandbox.message,
            "cells": [result.cells_run, result.cells_total],
            "errors": [[e.cell, e.ename, e.evalue] for e in result.errors],
            "on_disk": [[e.cell, e.ename, e.evalue] for e in artifacts.run.errors],
            "seen": artifacts.probe.task_values["seen"], "records_left": (tmp_path / "out" / "records").exists()}


def _forge_unprivileged() -> dict:
    """Run the forging notebook with the whole harness as a grader that is not root: in a user namespace of its own
    as uid 1000, without capabilities (the files it reads stay readable), so the sandbox has one user."""
    import subprocess
    import sys
    import tempfile

    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("needs root and unshare, to run the harness as a user that is not root")
    with tempfile.TemporaryDirectory(prefix="gradebench-unprivileged-") as folder:
        done = subprocess.run(
            [unshare, "--user", "--map-user=1000", "--map-group=1000", sys.executable, "-c", UNPRIVILEGED, folder,
             json.dumps(FORGER_CELLS)],
            capture_output=True, text=True, timeout=300, cwd=folder,
            env={"PATH": os.environ["PATH"], "HOME": folder, "LANG": "C.UTF-8",
                 "PYTHONPATH": str(Path(__file__).parents[2])},
        )
    assert done.returncode == 0, done.stderr[-3_000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    if "skip" in seen:
        pytest.skip(f"bubblewrap cannot run without root here: {seen['skip']}")
    return seen


@pytest.mark.parametrize("grader", ["root", "unprivileged"])
def test_a_background_process_of_the_student_cannot_rewrite_run_json(tmp_path, grader):
    """The records are files the host opened outside the sandbox; the runner writes them through descriptors it
    keeps from the kernel. A process the student's code leaves behind, rewriting run.json and executed.ipynb in
    the artifacts folder and through the runner's descriptors for the whole run, changes nothing: as root (the
    kernel is a user of its own) and as an unprivileged grader (the kernel is the runner's user). Nor can it
    ptrace the runner or read its memory to forge them there."""
    if grader == "root" and os.geteuid() != 0:
        pytest.skip("needs root")
    seen = _forge_as_root(tmp_path) if grader == "root" else _forge_unprivileged()
    assert seen["verdict"] == "ok", seen["message"]
    # the runner's record, not the forged one: the error stays
    assert seen["cells"] == [3, 3]
    assert seen["errors"] == seen["on_disk"] == [[1, "ValueError", "the real error"]]
    # ptrace and /proc/<runner>/mem: refused also when the kernel is the runner's own user (the runner is undumpable)
    assert seen["seen"] == {"runner_descriptors": ["blocked: PermissionError"] * 2, "kernel_holds_records": False,
                            "ptrace": "blocked: Operation not permitted", "runner_memory": "blocked: PermissionError",
                            "kernel_is_runner": grader == "unprivileged", "capabilities": "0000000000000000"}
    assert not seen["records_left"]  # moved into the artifacts folder, then removed


def test_a_script_runs_without_the_runners_capabilities(tmp_path):
    """A script runs in the runner's own process: the runner gives up its right to switch user first."""
    from harness.sandbox import BubblewrapSandbox

    if os.geteuid() != 0:
        pytest.skip("needs root: only then does the runner hold capabilities")
    script = tmp_path / "caps.py"
    script.write_text(
        "status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)\n"
        "caps = [status[k].strip() for k in ('CapEff', 'CapPrm', 'CapAmb')]\n"
        "open('written.txt', 'w').write('the workspace stays writable')\n"
    )
    submission = stage(tmp_path, script)
    settings = RunSettings(limits=Limits(wall_s=120), task_values=("caps",))
    result = Engine(BubblewrapSandbox(), "script").run(submission, "caps.py", tmp_path / "out", settings)
    assert (result.sandbox.verdict, result.errors) == ("ok", ())
    assert load_artifacts(result.artifacts_dir).probe.task_values["caps"] == ["0000000000000000"] * 3


def test_only_the_runners_records_are_read_back(tmp_path):
    """What the student's code left under the records' names in the artifacts folder is replaced or removed."""
    from harness.engines.base import adopt_records

    records, artifacts = tmp_path / "records", tmp_path / "artifacts"
    records.mkdir()
    artifacts.mkdir()
    (records / "run.json").write_text(json.dumps({**FORGED_RUN, "cells_run": 1}))
    (artifacts / "run.json").write_text(json.dumps(FORGED_RUN))
    (artifacts / "executed.ipynb").symlink_to("/etc/hostname")
    adopt_records(records, artifacts)
    assert json.loads((artifacts / "run.json").read_text())["cells_run"] == 1
    assert not (artifacts / "executed.ipynb").is_symlink() and not records.exists()


def test_a_seeded_run_draws_what_the_seed_gives_before_the_students_first_line(tmp_path):
    """A regrade trains as the first grading did: ``random``, NumPy and torch start from the rubric's seed."""
    import random

    import nbformat

    code = "import random, numpy, torch\ndraws = [random.random(), float(numpy.random.rand()), torch.rand(1).item()]"
    notebook = tmp_path / "draw.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), str(notebook))
    submission = stage(tmp_path, notebook)
    settings = RunSettings(limits=Limits(wall_s=120), task_values=("draws",), seed=5)
    result = Engine(make_sandbox(), "notebook").run(submission, "draw.ipynb", tmp_path / "out", settings)
    assert (result.sandbox.verdict, result.errors) == ("ok", ())
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    expected = [random.random(), float(np.random.rand()), torch.rand(1).item()]
    assert load_artifacts(result.artifacts_dir).probe.task_values["draws"] == expected
