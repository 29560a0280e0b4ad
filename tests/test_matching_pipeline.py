"""The matcher inside grading: the report names the file graded per task, a TA's pins, and a script that died
at import earns nothing that needs its run. No student code runs here (a sandbox that runs nothing, or records
built by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from harness.checks import run_check
from harness.checks.context import CheckContext
from harness.contract import RunRecord
from harness.engines.runner import error_entry
from harness.errors import HarnessError
from harness.models import ExecutionResult, SandboxResult
from harness.pipeline import died_at_import, grade_batch, prepare_setup
from harness.rubric import CheckSpec
from tests.checks.fabricate import run_record
from tests.test_benchmark_verification import RunsNothing

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "rubrics" / "dl2025-a2.yaml"


def _notebook(*code: str) -> str:
    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in code]))


def _task(report, task_id):
    return next(t for t in report.tasks if t.task == task_id)


@pytest.fixture()
def batch(tmp_path: Path) -> Path:
    batch = tmp_path / "batch"
    (batch / "alice" / "assignment_2").mkdir(parents=True)
    (batch / "alice" / "cnn_final_v2.ipynb").write_text(_notebook("class Net(nn.Module):\n    pass", "model = Net()"))
    (batch / "alice" / "assignment_2" / "vae.ipynb").write_text(_notebook("class VAE(nn.Module):\n    pass"))
    (batch / "bob").mkdir()
    (batch / "bob" / "cnn_a.ipynb").write_text(_notebook("model = 1 # cnn a"))
    (batch / "bob" / "cnn_b.ipynb").write_text(_notebook("model = 2 # cnn b"))
    return batch


def test_the_report_names_the_file_graded_and_why_and_a_pin_decides(batch: Path, tmp_path: Path, small_data: Path) -> None:
    setup = prepare_setup(RUBRIC, small_data, tmp_path / "out", profile="fast", sandbox=RunsNothing())
    first = {r.student: r for r in grade_batch(batch, setup).reports}
    alice, bob = first["alice"], first["bob"]
    cnn = _task(alice, "cnn")
    assert (cnn.source, cnn.source_run) == ("cnn_final_v2.ipynb", "cnn_final_v2.ipynb")
    assert cnn.source_note == "cnn_final_v2.ipynb was chosen by its content (its name says cnn)"
    assert _task(alice, "vae").source_note == "assignment_2/vae.ipynb is named as the rubric asks (vae.ipynb)"
    assert [e.source for e in alice.executions] == ["cnn_final_v2.ipynb", "assignment_2/vae.ipynb"]
    undecided = "could not tell which of cnn_a.ipynb, cnn_b.ipynb is task cnn (1.3 CNN on MNIST); a TA can pin it"
    assert _task(bob, "cnn").source == "" and _task(bob, "cnn").source_note == undecided
    assert {c.message for c in _task(bob, "cnn").checks} == {undecided, f"your code could not be run at all: {undecided}", f"your code was not run: {undecided}"}
    out = setup.out_dir
    page = (out / "students" / "alice" / "index.html").read_text(encoding="utf-8")
    assert "Graded: <code>cnn_final_v2.ipynb</code>. cnn_final_v2.ipynb was chosen by its content (its name says cnn)" in page
    stored = json.loads((out / "students" / "bob" / "report.json").read_text(encoding="utf-8"))
    assert next(t for t in stored["tasks"] if t["task"] == "cnn")["source_note"] == undecided

    pins = tmp_path / "pins.yaml"
    pins.write_text("bob:\n  cnn: cnn_b.ipynb\n")
    setup = prepare_setup(RUBRIC, small_data, tmp_path / "out", profile="fast", sandbox=RunsNothing(), pins=pins)
    again = grade_batch(batch, setup)
    assert (again.graded, again.reused) == (1, 1)  # bob's stored report predates the pin: graded again; alice's reused
    bob = next(r for r in again.reports if r.student == "bob")
    assert (_task(bob, "cnn").source, _task(bob, "cnn").source_note) == ("cnn_b.ipynb", "cnn_b.ipynb was pinned to this task by a TA")
    assert [e.source for e in bob.executions] == ["cnn_b.ipynb"]
    assert grade_batch(batch, setup).reused == 2  # now the pinned report is reused


def test_pins_naming_what_is_not_in_the_batch_stop_it_with_a_clear_error(batch: Path, tmp_path: Path, small_data: Path) -> None:
    pins = tmp_path / "pins.yaml"
    pins.write_text("bobb:\n  cnn: cnn_b.ipynb\n")
    setup = prepare_setup(RUBRIC, small_data, tmp_path / "out", profile="fast", sandbox=RunsNothing(), pins=pins)
    with pytest.raises(HarnessError, match=r"pins.yaml: no student 'bobb' in this batch \(did you mean 'bob'\?\)"):
        grade_batch(batch, setup)
    pins.write_text("bob:\n  cnn: cnn_c.ipynb\n")
    setup = prepare_setup(RUBRIC, small_data, tmp_path / "out", profile="fast", sandbox=RunsNothing(), pins=pins)
    with pytest.raises(HarnessError, match=r"student 'bob', task cnn: no file 'cnn_c.ipynb' in the submission; it holds cnn_a.ipynb, cnn_b.ipynb"):
        grade_batch(batch, setup)
    pins.write_text("bob:\n  cnnn: cnn_b.ipynb\n")
    with pytest.raises(HarnessError, match=r"'cnnn' is not an automatic task of dl2025-a2 \(did you mean 'cnn'\?\)"):
        prepare_setup(RUBRIC, small_data, tmp_path / "out", profile="fast", sandbox=RunsNothing(), pins=pins)


# -- a script that died at import ----------------------------------------------------------------------------

SCRIPT = '"""Question 1."""\nimport torch\nimport tqdm\nfrom torch import nn\n\nLR = 1e-3\nmodel = train()\nimport late_module\n'


def _execution(wall_s: float = 0.5) -> ExecutionResult:
    return ExecutionResult("q1.py", SandboxResult("ok", "exit code 0", 0, wall_s, wall_s, 0, "", "", True))


def _run(ename: str, evalue: str, excerpt: str) -> RunRecord:
    return run_record(source="q1.py", kind="script", cells_total=1, errors=[error_entry(-1, ename, evalue, excerpt)])


def test_which_script_runs_died_at_import() -> None:
    died = died_at_import(_execution(), _run("ModuleNotFoundError", "No module named 'tqdm'", "line 3: import tqdm"), SCRIPT)
    assert died == "your script stopped at its start (ModuleNotFoundError: No module named 'tqdm') before doing any work"
    assert died_at_import(_execution(), _run("SyntaxError", "expected ':'", "line 9: def f("), SCRIPT).startswith(
        "your script stopped at its start (SyntaxError: expected ':')"
    )
    # an import after the training did work; any other error, and notebooks, are never "died at import"
    assert died_at_import(_execution(), _run("ModuleNotFoundError", "No module named 'late_module'", "line 8: import late_module"), SCRIPT) == ""
    assert died_at_import(_execution(), _run("RuntimeError", "shape mismatch", "line 7: model = train()"), SCRIPT) == ""
    assert died_at_import(_execution(), run_record(errors=[error_entry(0, "ImportError", "x", "import x")]), "") == ""
    assert died_at_import(_execution(), run_record(source="q1.py", kind="script", cells_total=1), SCRIPT) == ""


@pytest.mark.parametrize(("check", "fields"), [
    ("within_budget", {"budget_s": 100.0, "budget_note": "100 s"}),
    ("loss_used", {"source_text": "criterion = nn.L1Loss()"}),
    ("loss_choice", {"source_text": "criterion = nn.CrossEntropyLoss()"}),
])
def test_a_script_that_died_at_import_earns_no_points_that_need_its_run(check: str, fields: dict) -> None:
    spec = CheckSpec.model_validate({"check": check, "points": 1, **({"equals": "L1Loss"} if check == "loss_used" else {})})
    died = "your script stopped at its start (ModuleNotFoundError: No module named 'tqdm') before doing any work"
    result = run_check(CheckContext(task_id="autoencoder", execution=_execution(), run=run_record(), run_died=died,
                                    **fields), spec)
    assert result.status == "failed" and result.score == 0
    assert result.message.startswith(f"{died}, so ")
    if check != "loss_choice":  # loss_choice also needs the model's output, which a check context without one lacks
        alive = run_check(CheckContext(task_id="autoencoder", execution=_execution(), run=run_record(), **fields), spec)
        assert alive.status == "passed", alive.message


# -- one file answering several parts of the rubric -------------------------------------------------------------


def test_a_file_answering_several_parts_gets_the_sum_of_their_budgets_and_limits(tmp_path: Path, small_data: Path) -> None:
    from harness.pipeline import _source_limits, _step_budget

    setup = prepare_setup(ROOT / "rubrics" / "idl-ex2.yaml", small_data, tmp_path / "out", profile="fast", sandbox=RunsNothing())
    setup.calibration = {"autoencoder": {"seconds": 10.0}, "classifier": {"seconds": 20.0}, "few-labels": {"seconds": 4.0}}
    rubric = setup.rubric
    q1, q2, q4 = rubric.task("autoencoder"), rubric.task("classifier"), rubric.task("few-labels")
    assert _step_budget(setup, q1, [q1]) == (50.0, "5x reference (10.0 s) = 50 s")
    budget, note = _step_budget(setup, q4, [q1, q2, q4])
    assert (budget, note) == (170.0, "170 s, the sum of the budgets of the 3 parts of the assignment this file answers")
    assert _source_limits(setup, [q1]).wall_s == 300 and _source_limits(setup, [q1, q2, q4]).wall_s == 900


def test_the_self_check_finds_the_rubric_of_a_folder_by_content(tmp_path: Path) -> None:
    from harness.cli import _find_rubric_for

    (tmp_path / "mine" / "assignment_2").mkdir(parents=True)
    (tmp_path / "mine" / "cnn_final_v2.ipynb").write_text(_notebook("class CNN(nn.Module):\n    pass"))
    (tmp_path / "mine" / "assignment_2" / "my_vae.ipynb").write_text(
        _notebook("def loss_function(r, x, mu, logvar):\n    return 0", "def plot_generated_samples(m):\n    pass")
    )
    assert _find_rubric_for(tmp_path / "mine") == ROOT / "rubrics" / "dl2025-a2.yaml"
