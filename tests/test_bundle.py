"""Self-check bundles (harness.bundle): what they hold, what they refuse, and a student's check without the
reference code (the last two tests grade notebooks: end-to-end tier)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness import rubric as rubric_module
from harness.bundle import MEMBERS, data_differs, find_bundle, make_bundle, read_bundle
from harness.architecture import describe_reference
from harness.checks import known_checks, options
from harness.checks.architecture import ArchitectureOptions
from harness.cli import app
from harness.errors import HarnessError, RubricError
from harness.pipeline import GradingSetup, _reference_for, prepare_setup
from harness.rubric import _resolve_spec, load_rubric, parse_rubric
from harness.sandbox import make_sandbox

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

BLOCK_REFERENCE = """
import importlib.abc, sys

class NoReference(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "reference" or name.startswith("reference."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoReference())
"""
"""Run first in a child process: `import reference` fails there, as in a student's install of the wheel."""


def cnn_rubric(folder: Path) -> Path:
    """dl2025-a2's rubric with its CNN task only (one notebook to calibrate)."""
    data = yaml.safe_load((ROOT / "rubrics" / "dl2025-a2.yaml").read_text(encoding="utf-8"))
    data["tasks"] = [task for task in data["tasks"] if task["id"] == "cnn"]
    path = folder / "dl2025-a2-cnn.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def bundle(tmp_path: Path, small_data: Path) -> Path:
    """A bundle of the CNN task, with a calibration as calibrate_rubric leaves it (not measured here)."""
    setup = prepare_setup(cnn_rubric(tmp_path), small_data, tmp_path / "out", profile="fast", sandbox=make_sandbox("plain"))
    setup.calibration = {"cnn": {"seconds": 20.0, "hidden_accuracy": 0.85, "hidden_min_class_accuracy": 0.7}}
    return make_bundle(setup, tmp_path / "dl2025-a2.gbundle")


def rewritten(path: Path, target: Path, members: dict[str, bytes]) -> Path:
    """A copy of the bundle at ``path`` with some members replaced."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as copy:
        for name in source.namelist():
            copy.writestr(name, members.get(name, source.read(name)))
    return target


def test_a_bundle_holds_the_rubric_the_bars_and_the_reference_described_never_its_code(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == sorted(MEMBERS)
        texts = {name: archive.read(name).decode() for name in archive.namelist()}
    assert texts["rubric.yaml"] == (tmp_path / "dl2025-a2-cnn.yaml").read_text(encoding="utf-8")
    for name, text in texts.items():  # no code of reference/ (its classes and functions), no weights
        assert "def " not in text and "import " not in text and "state_dict" not in text, name
    assert json.loads(texts["calibration.json"]) == {
        "cnn": {"seconds": 20.0, "hidden_accuracy": 0.85, "hidden_min_class_accuracy": 0.7}
    }
    course = load_rubric(tmp_path / "dl2025-a2-cnn.yaml", known_checks())
    _, layers, parameters = _reference_for(GradingSetup(course, tmp_path, tmp_path, None), course.task("cnn"))
    assert json.loads(texts["references.json"]) == {"cnn": {"layers": layers, "parameters": parameters, "accepted": {}}}
    assert parameters == 12810  # the rubric's own parameter_count bar
    manifest = json.loads(texts["manifest.json"])
    assert (manifest["kind"], manifest["format"], manifest["assignment"], manifest["tasks"]) == (
        "gradebench-bundle", 1, "dl2025-a2", ["cnn"])


@pytest.mark.parametrize("assignment", ["dl2025-a2", "adl2024-a2", "idl-ex2", "mle-sheet06"])
def test_every_assignment_s_bundle_gives_grading_the_reference_it_reads_from_the_code(assignment: str, tmp_path: Path) -> None:
    """What grading reads of each reference network (layers with free sizes marked, parameter count, the other
    networks a task accepts) is the same read from the bundle as built from reference/."""
    course = load_rubric(ROOT / "rubrics" / f"{assignment}.yaml", known_checks())
    setup = GradingSetup(course, tmp_path, tmp_path, None)
    read = read_bundle(make_bundle(setup, tmp_path / f"{assignment}.gbundle"))
    from_bundle = GradingSetup(read.rubric, tmp_path, tmp_path, None, references=read.references)
    modelled = [task for task in course.automatic_tasks if task.model is not None and task.model.spec]
    assert set(read.references) == {task.id for task in modelled}  # none in idl-ex2: its networks are the students' own
    for task in modelled:
        _, layers, parameters = _reference_for(setup, task)
        assert _reference_for(from_bundle, read.rubric.task(task.id)) == (None, layers, parameters), task.id
    accepted = {(task.id, also): describe_reference(_resolve_spec(also), {}, {}, [[1, 28, 28], [784]])
                for task in course.automatic_tasks for spec in task.checks if spec.check == "architecture_matches"
                for also in options(spec, ArchitectureOptions).also}
    assert accepted == {key: read.references[key[0]].accepted[key[1]] for key in accepted}
    if assignment == "dl2025-a2":  # the feed-forward task also accepts the network without its LogSoftmax
        assert list(accepted) == [("ff", "reference.classifiers:FeedForwardLogits")]


def test_reading_a_bundle_never_imports_the_reference_classes(bundle: Path, monkeypatch) -> None:
    def refuse(spec: str) -> type:
        raise AssertionError(f"{spec} was imported")

    monkeypatch.setattr(rubric_module, "_resolve_spec", refuse)
    read = read_bundle(bundle)
    assert read.rubric.task("cnn").model.spec == "reference.classifiers:CNN"
    assert read.references["cnn"].parameters == 12810 and read.calibration["cnn"]["hidden_accuracy"] == 0.85


def test_a_rubric_from_a_bundle_keeps_specs_unresolved_and_a_course_rubric_still_checks_them() -> None:
    text = (ROOT / "rubrics" / "dl2025-a2.yaml").read_text(encoding="utf-8").replace(
        "reference.classifiers:CNN", "course_solutions.nets:CNN")
    with pytest.raises(RubricError, match=r"cannot import module 'course_solutions.nets'"):
        parse_rubric(text, "dl2025-a2.yaml", known_checks())
    assert parse_rubric(text, "dl2025-a2.yaml", known_checks(), resolve_specs=False).task("cnn").model.spec == (
        "course_solutions.nets:CNN")


def test_a_bundle_of_another_format_says_what_to_do(bundle: Path, tmp_path: Path) -> None:
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    later = rewritten(bundle, tmp_path / "later.gbundle", {"manifest.json": json.dumps({**manifest, "format": 2}).encode()})
    with pytest.raises(HarnessError) as error:
        read_bundle(later)
    assert str(error.value) == (
        f"{later} is a bundle of format 2 (gradebench 0.1.0); this gradebench reads format 1: install the gradebench "
        "version your course names, or ask your course staff for the bundle of this assignment again"
    )


def test_an_edited_rubric_in_a_bundle_is_refused(bundle: Path, tmp_path: Path) -> None:
    text = zipfile.ZipFile(bundle).read("rubric.yaml").replace(b"relative_to_reference: 0.88", b"relative_to_reference: 0.1")
    edited = rewritten(bundle, tmp_path / "edited.gbundle", {"rubric.yaml": text})
    with pytest.raises(HarnessError) as error:
        read_bundle(edited)
    assert str(error.value) == (
        f"{edited}: its rubric.yaml is not the rubric the bundle was made with (it was changed): "
        "ask your course staff for the bundle of this assignment again"
    )


def test_a_file_that_is_no_bundle_is_refused(tmp_path: Path) -> None:
    notebook = tmp_path / "CNNMNIST.ipynb"
    notebook.write_text("{}", encoding="utf-8")
    with pytest.raises(HarnessError, match=r"CNNMNIST.ipynb is not a gradebench self-check bundle \(not a zip file\)$"):
        read_bundle(notebook)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("CNNMNIST.ipynb", "{}")
    with pytest.raises(HarnessError, match=r"other.zip is not a gradebench self-check bundle \(it has no manifest.json\)$"):
        read_bundle(tmp_path / "other.zip")


def test_data_prepared_otherwise_than_the_bundle_s_is_noticed(bundle: Path, small_data: Path, tmp_path: Path) -> None:
    read = read_bundle(bundle)
    assert data_differs(read, small_data) == []  # the data the bars were measured on, whenever it was prepared
    manifest = json.loads((small_data / "manifest.json").read_text(encoding="utf-8"))
    manifest["datasets"]["mnist"]["seed"] += 1
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert data_differs(read, tmp_path / "other") == ["mnist"]


def test_the_bundle_beside_the_notebook_or_named_by_the_environment_is_found(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GRADEBENCH_BUNDLE", raising=False)
    assert find_bundle(tmp_path) is None
    (tmp_path / "dl2025-a2.gbundle").write_bytes(b"")
    assert find_bundle(tmp_path) == tmp_path / "dl2025-a2.gbundle"
    (tmp_path / "adl2024-a2.gbundle").write_bytes(b"")
    with pytest.raises(HarnessError) as error:
        find_bundle(tmp_path)
    assert str(error.value) == ("several bundles next to the notebook (adl2024-a2.gbundle, dl2025-a2.gbundle): name "
                                "one, e.g. bundle='adl2024-a2.gbundle'")
    monkeypatch.setenv("GRADEBENCH_BUNDLE", str(tmp_path / "course" / "dl2025-a2.gbundle"))
    assert find_bundle(tmp_path) == tmp_path / "course" / "dl2025-a2.gbundle"


def test_check_with_a_bundle_and_another_rubric_is_a_clear_error(bundle: Path, tmp_path: Path) -> None:
    notebook = ROOT / "submissions" / "dl2025-a2" / "reference" / "CNNMNIST.ipynb"
    other = ROOT / "rubrics" / "adl2024-a2.yaml"
    result = runner.invoke(app, ["check", str(notebook), "--bundle", str(bundle), "--rubric", str(other)])
    assert result.exit_code == 2
    assert (f"{other} is not the rubric of the bundle {bundle.name} (assignment dl2025-a2): leave out --rubric, or "
            "use the bundle made from this rubric") in " ".join(result.output.split())


def test_the_wheel_students_install_holds_no_reference_implementations() -> None:
    import tomllib

    import setuptools

    include = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = setuptools.find_packages(where=str(ROOT), include=include)
    assert {"gradebench", "harness", "harness.checks", "harness.probes", "reports"} <= set(packages)
    assert not [p for p in packages if p.split(".")[0] in ("reference", "tests", "submissions")]


# -- end to end: course staff make the bundle, a student checks with it where `import reference` fails ----------


def gradebench(*arguments: str, env: dict[str, str], block_reference: bool = False) -> subprocess.CompletedProcess:
    """The `gradebench` command in a child process; with ``block_reference``, where `import reference` fails."""
    code = (BLOCK_REFERENCE if block_reference else "") + "import sys\nfrom harness.cli import main\nsys.argv[0] = 'gradebench'\nmain()\n"
    return subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True, env=env,
                          timeout=900, cwd=env["HOME"])


@pytest.fixture(scope="module")
def course_bundle(tmp_path_factory, small_data: Path) -> tuple[Path, dict[str, str]]:
    """The CNN task's bundle as course staff make it (`gradebench bundle make`, calibrating on the reference), and
    the environment of the child processes (a home and cache of their own)."""
    home = tmp_path_factory.mktemp("student")
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "COLUMNS": "200"}
    made = gradebench("bundle", "make", "--rubric", str(cnn_rubric(home)), "--out", str(home / "dl2025-a2.gbundle"),
                      "--data", str(small_data), "--reference", str(ROOT / "submissions" / "dl2025-a2" / "reference"),
                      env=env)
    assert made.returncode == 0, made.stderr + made.stdout
    assert f"wrote {home / 'dl2025-a2.gbundle'}" in " ".join(made.stdout.split())
    return home / "dl2025-a2.gbundle", env


@pytest.mark.slow
def test_a_student_checks_notebooks_with_a_bundle_and_no_reference_code(course_bundle, small_data: Path) -> None:
    bundle, env = course_bundle
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == sorted(MEMBERS)  # no reference/*.py, no weights, no labels
        calibration = json.loads(archive.read("calibration.json"))
    assert all(isinstance(value, float) for value in calibration["cnn"].values())  # figures, never per-image labels

    wrong = gradebench("check", "--bundle", str(bundle), "--data", str(small_data),
                       str(ROOT / "submissions" / "dl2025-a2" / "wrong_flatten" / "CNNMNIST.ipynb"),
                       env=env, block_reference=True)
    text = " ".join(wrong.stdout.split())
    assert wrong.returncode == 1, wrong.stderr + wrong.stdout
    assert ("CNNMNIST.ipynb: 8.0 / 13.0 points (self-check bundle dl2025-a2.gbundle; 1 of the points are checked "
            "only when you hand in)") in text
    assert "did you drop a MaxPool2d layer?" in text
    assert ("cnn / forward_consistent (checked when you hand in): not available in the self-check: recomputing your "
            "predictions from your weights needs the assignment's network") in text
    assert "calibrating" not in text

    good = gradebench("check", "--bundle", str(bundle), "--data", str(small_data),
                      str(ROOT / "submissions" / "dl2025-a2" / "reference" / "CNNMNIST.ipynb"),
                      env=env, block_reference=True)
    assert good.returncode == 0, good.stderr + good.stdout  # the one check the bundle cannot run is not held against it
    assert "CNNMNIST.ipynb: 12.0 / 13.0 points" in " ".join(good.stdout.split())


# -- the in-notebook check: gradebench.check("cnn") on the kernel's own objects ------------------------------------

TRAIN = """
import numpy as np
import torch
from torch import nn
from harness.data import load_split

images, labels = load_split(DATA, "mnist", "train")
x = (torch.tensor(images[:3000], dtype=torch.float32).unsqueeze(1) / 255.0 - 0.1307) / 0.3081
y = torch.tensor(labels[:3000], dtype=torch.long)


class Net(nn.Module):
    def __init__(self, second_pool=True):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3)
        self.conv2 = nn.Conv2d(16, 32, 3)
        self.pool = nn.MaxPool2d(2, 2)
        self.second_pool = second_pool
        self.fc = nn.Linear(800 if second_pool else 3872, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        if self.second_pool:
            x = self.pool(x)
        return torch.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


torch.manual_seed(0)
model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.NLLLoss()
for epoch in range(2):
    for start in range(0, len(x), 64):
        optimizer.zero_grad()
        loss = criterion(model(x[start:start + 64]), y[start:start + 64])
        loss.backward()
        optimizer.step()
"""
"""A student's notebook, shortened: the assignment's CNN (as a student writes it) trained on a little data."""


@pytest.mark.slow
def test_gradebench_check_in_a_notebook_checks_the_kernels_model(course_bundle, small_data: Path, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    bundle, env = course_bundle
    call = f"gradebench.check({{task!r}}, bundle={str(bundle)!r}, data={str(small_data)!r}{{more}})"
    cells = [
        f"DATA = {str(small_data)!r}\n" + TRAIN,
        "import gradebench\n" + call.format(task="cnn", more=""),
        "result = " + call.format(task="cnn", more=", namespace={'model': Net(second_pool=False)}") + "\nprint(result)",
        call.format(task="cnnn", more=""),
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in cells])
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)  # the kernel's environment: `import reference` is not needed there either
    trained, wrong, unknown = (cell["outputs"] for cell in notebook.cells[1:])

    shown = trained[0]["data"]
    text = shown["text/plain"]
    score, points = re.match(r"cnn \(1.3 CNN on MNIST\): ([\d.]+) / ([\d.]+) points", text).groups()
    rows = re.findall(r"^  (passed|failed|skipped|error) +(\w+) +([\d.]+)/([\d.]+)$", text, re.M)
    assert [row[1] for row in rows] == [
        "runs_without_error", "architecture_matches", "parameter_count", "feature_width", "output_kind", "loss_choice",
        "test_accuracy", "per_class_accuracy", "forward_consistent", "within_budget",
    ]
    assert float(points) == 13 and float(score) == pytest.approx(sum(float(row[2]) for row in rows))
    assert "self-check bundle dl2025-a2.gbundle" in text.splitlines()[0]
    for name in ("architecture_matches", "parameter_count", "feature_width", "output_kind"):
        assert f"passed   {name}" in text
    assert "skipped  forward_consistent" in text and "not available in the self-check" in text
    assert "skipped  runs_without_error" in text and "not checked on the live kernel" in text
    assert text.rstrip().endswith(
        "This checked the objects in the running kernel as they are now, not a clean run: grading runs your "
        "notebook from the top, as `gradebench check --bundle dl2025-a2.gbundle YOUR_NOTEBOOK.ipynb` does."
    )
    html = shown["text/html"]  # Jupyter shows the table
    assert "<table>" in html and "<td>architecture_matches</td>" in html and "running kernel" in html

    printed = "".join(output.get("text", "") for output in wrong)
    assert "failed   feature_width" in printed
    assert "your Flatten produces 3,872 features (from 32 x 11 x 11); the assignment's network has 800 here: " \
           "did you drop a MaxPool2d layer?" in printed

    [error] = unknown
    assert (error["ename"], error["evalue"]) == ("CheckFailed", "rubric 'dl2025-a2' has no task 'cnnn'; tasks: cnn")
