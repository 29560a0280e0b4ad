"""The grading environment's packages: the common ones import in the sandbox offline, a rubric's list is checked
before grading, and a package a student imports that the environment lacks is the environment's problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.engines import Engine, RunSettings
from harness.environment import (
    COMMON_PACKAGES,
    check_packages,
    environment_problem,
    missing_module,
    missing_modules,
)
from harness.errors import HarnessError, RubricError
from harness.models import CellError, ExecutionResult, GradeReport, Limits, SandboxResult, Submission, TaskScore
from harness.reporting import gradebook, render_student, shown_errors
from harness.rubric import parse_rubric
from harness.sandbox import make_sandbox
from tests.test_rubric import VALID

COURSE_IMPORTS = """\
import tqdm, tqdm.notebook, tqdm.auto
from tqdm.auto import tqdm as bar
import wandb, plotly.express as px, seaborn as sns, pandas as pd, sklearn.decomposition
run = wandb.init(project="a2", config={"lr": 0.002})  # WANDB_MODE=disabled: no network, no login
for step in bar(range(3)):
    wandb.log({"loss": 1.0 / (step + 1)})
wandb.finish()
table = pd.DataFrame({"epoch": [1, 2], "loss": [0.5, 0.3]})
figure = px.line(table, x="epoch", y="loss")
sns.lineplot(data=table, x="epoch", y="loss")
print("imported everything")
"""


def stage(tmp_path: Path, files: dict[str, str]) -> Submission:
    root = tmp_path / "submission"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return Submission(student="student_1", source=root, root=root, files=tuple(sorted(files)), kind="folder",
                      content_hash="0" * 64)


def run_script(tmp_path: Path, files: dict[str, str], source: str) -> ExecutionResult:
    settings = RunSettings(limits=Limits(wall_s=240))
    result = Engine(make_sandbox(), "script").run(stage(tmp_path, files), source, tmp_path / "out", settings)
    assert result.sandbox.verdict == "ok", result.sandbox.stderr[-3000:]
    return result


def test_the_common_course_packages_are_installed():
    assert missing_modules(COMMON_PACKAGES) == []


def test_the_common_course_packages_import_and_run_in_the_sandbox_offline(tmp_path):
    result = run_script(tmp_path, {"train.py": COURSE_IMPORTS}, "train.py")
    assert result.errors == () and result.missing_packages == ()
    assert "imported everything" in result.sandbox.stdout


def test_a_package_the_environment_lacks_is_recorded_but_a_students_own_broken_import_is_not(tmp_path):
    assert missing_module("ModuleNotFoundError", "No module named 'lightning.pytorch'") == "lightning"
    assert missing_module("ModuleNotFoundError", "No module named 'google.colab'") is None  # no package has it
    assert missing_module("ImportError", "cannot import name 'x' from 'torch'") is None
    files = {
        "ex2.py": "import lightning\n",
        "q1.py": "import helpers\n",  # helpers.py is in a sub-folder: the student's import is wrong, not the environment
        "lib/helpers.py": "X = 1\n",
    }
    lacking = run_script(tmp_path / "a", files, "ex2.py")
    assert [(e.ename, e.evalue) for e in lacking.errors] == [("ModuleNotFoundError", "No module named 'lightning'")]
    assert lacking.missing_packages == ("lightning",)
    own = run_script(tmp_path / "b", files, "q1.py")
    assert own.errors[0].ename == "ModuleNotFoundError" and own.missing_packages == ()


def test_a_rubric_may_list_packages_which_are_checked_before_grading(tmp_path):
    rubric = parse_rubric(VALID + "packages: [tqdm.notebook, wandb, lightning_that_is_not_here]\n", "r.yaml")
    assert rubric.packages == ("tqdm.notebook", "wandb", "lightning_that_is_not_here")
    with pytest.raises(HarnessError) as raised:
        check_packages(rubric.packages, "r.yaml")
    assert str(raised.value) == (
        "r.yaml: the rubric's packages need lightning_that_is_not_here, which the grading environment lacks: install "
        "it into gradebench's environment (pip install ...) before grading"
    )
    with pytest.raises(RubricError) as raised:
        parse_rubric(VALID + "packages: [scikit-learn]\n", "r.yaml")
    assert "'scikit-learn' is not a module name: write it as Python imports it (sklearn, not scikit-learn)" in str(raised.value)


def report_with_missing_package(tmp_path: Path) -> GradeReport:
    sandbox = SandboxResult(verdict="ok", message="exit code 0", returncode=0, wall_s=3.0, cpu_s=2.0,
                            peak_memory_bytes=0, stdout="", stderr="", isolated=True)
    errors = (
        CellError(0, "ModuleNotFoundError", "No module named 'lightning'"),
        CellError(2, "NameError", "name 'L' is not defined"),
        CellError(3, "NameError", "name 'trainer' is not defined"),
        CellError(4, "ZeroDivisionError", "division by zero"),
    )
    execution = ExecutionResult(source="ex2.ipynb", sandbox=sandbox, cells_run=5, cells_total=5, errors=errors,
                                missing_packages=("lightning",))
    return GradeReport(student="ann", assignment="dl2025-a2", content_hash="0" * 64, rubric_hash="1" * 64,
                       profile="fast", tasks=(TaskScore("cnn", "CNN", 3.0, 8.0),), executions=(execution,))


def test_a_missing_package_is_the_environments_problem_in_the_gradebook_and_the_students_page(tmp_path):
    report = report_with_missing_package(tmp_path)
    problem = environment_problem("ex2.ipynb", ["lightning"])
    assert problem == (
        "ex2.ipynb imports `lightning`, which the grading environment does not have (an environment problem, not the "
        "student's): install it into gradebench's environment (and list it in the rubric's packages, so that grading "
        "checks for it first), then grade again"
    )
    assert report.environment_problems == (problem,)
    assert gradebook([report]).loc[0, "problem"] == problem
    assert shown_errors(report.executions[0]) == [
        "cell 1: ModuleNotFoundError: No module named 'lightning' (the grading environment lacks this package: not "
        "your error)",
        "cell 5: ZeroDivisionError: division by zero",
        "2 later NameErrors (cells 3, 4) most likely follow from the missing package",
    ]
    page = render_student(report, tmp_path / "out", "DL 2025 A2").read_text()
    assert "<strong>Not your fault:</strong> your code imports a package the grading computer does not have." in page
    assert "name &#39;L&#39; is not defined" not in page


def test_runs_without_error_blames_the_environment_for_a_missing_package_and_sums_up_its_name_errors():
    from harness.checks import run_check
    from harness.checks.context import CheckContext
    from tests.checks.conftest import Spec
    from tests.checks.fabricate import run_record

    sandbox = SandboxResult("ok", "exit code 0", 0, 5.0, 5.0, 0, "", "", True)
    execution = ExecutionResult(source="CNNMNIST.ipynb", sandbox=sandbox)
    errors = [
        {"cell": 1, "ename": "ModuleNotFoundError", "evalue": "No module named 'lightning'"},
        {"cell": 3, "ename": "NameError", "evalue": "name 'L' is not defined"},
        {"cell": 4, "ename": "NameError", "evalue": "name 'trainer' is not defined"},
    ]
    run = run_record(cells_total=6, errors=errors, missing_packages=["lightning"])
    only_environment = run_check(CheckContext("cnn", execution=execution, run=run), Spec("runs_without_error"))
    assert only_environment.status == "error"  # a grader fault: the report tells the student it is not theirs
    assert only_environment.message == (
        "RuntimeError: cell 2 could not import `lightning`, which the grading environment lacks: not your error (a TA "
        "will install it and grade again); 2 later NameErrors (cells 4, 5) follow from it"
    )
    own = {"cell": 5, "ename": "ZeroDivisionError", "evalue": "division by zero"}
    mixed = run_check(CheckContext("cnn", execution=execution, run=run_record(cells_total=6, errors=[*errors, own], missing_packages=["lightning"])),
                      Spec("runs_without_error"))
    assert mixed.status == "failed"
    assert mixed.message.startswith("cell 6 raised ZeroDivisionError: division by zero; cell 2 could not import `lightning`")


def test_tqdm_notebook_progress_bars_work_in_a_kernel(tmp_path):
    from tests.engines.test_runner import base_config, run_source, write_notebook

    notebook = write_notebook(tmp_path / "bars.ipynb", "from tqdm.notebook import tqdm\ntotal = sum(tqdm(range(5)))")
    run = run_source(tmp_path, notebook, "notebook", base_config(task_values=["total"]))
    assert run.record["errors"] == [] and run.probe["task_values"]["total"] == 10
