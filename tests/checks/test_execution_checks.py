"""Run checks: errors with partial credit, figures, budgets."""

from __future__ import annotations

from dataclasses import replace

from harness.checks import known_checks, run_check
from harness.checks.context import CheckContext
from harness.models import ExecutionResult, SandboxResult
from harness.rubric import NoParams
from harness.contract import ProbeRecord
from tests.checks.conftest import Spec
from tests.checks.fabricate import probe_record, run_record


def _execution(verdict: str = "ok", message: str = "exit code 0", wall_s: float = 10.0) -> ExecutionResult:
    sandbox = SandboxResult(verdict, message, 0, wall_s, wall_s, 0, "", "", True)
    return ExecutionResult(source="CNNMNIST.ipynb", sandbox=sandbox)


def test_runs_without_error() -> None:
    clean = CheckContext("cnn", execution=_execution(), run=run_record(cells_total=10))
    assert run_check(clean, Spec("runs_without_error", points=2)).status == "passed"
    errors = [{"cell": 4, "ename": "NameError", "evalue": "name 'model' is not defined"}]
    failing = CheckContext("cnn", execution=_execution("error", "exit code 1"), run=run_record(cells_total=10, errors=errors))
    result = run_check(failing, Spec("runs_without_error", points=2))
    assert (result.status, result.score) == ("failed", 1.8)
    assert result.message == "cell 5 raised NameError: name 'model' is not defined"


def test_runs_without_error_after_a_timeout() -> None:
    ctx = CheckContext("cnn", execution=_execution("timeout", "timed out after 300 s"), run=None)
    assert run_check(ctx, Spec("runs_without_error")).message == "your code did not finish: it timed out after 300 s"


def test_a_stopped_run_names_the_cell_that_was_running() -> None:
    run = run_record(cells_total=8, cells_run=3, running_cell=3)
    killed = CheckContext("cnn", execution=_execution("killed", "was killed by SIGKILL"), run=run)
    result = run_check(killed, Spec("runs_without_error"))
    assert (result.status, result.score) == ("failed", 0.0)
    assert result.message == "your code did not finish: it was killed by SIGKILL in cell 4"
    timed_out = CheckContext("cnn", execution=_execution("timeout", "timed out after 300 s", wall_s=300.0), run=run,
                             budget_s=300.0, budget_note="300 s")
    assert run_check(timed_out, Spec("runs_without_error")).message == (
        "your code did not finish: it timed out after 300 s in cell 4")
    assert run_check(timed_out, Spec("within_budget")).message == "your code timed out after 300 s in cell 4 (budget: 300 s)"


def test_a_crash_earns_only_the_cells_that_ran_cleanly_before_it() -> None:
    died = {"cell": 2, "ename": "DeadKernelError", "evalue": "the kernel was killed by SIGSEGV (a segmentation fault)"}
    run = run_record(cells_total=8, cells_run=3, errors=[died],
                     kernel_died={"cell": 2, "message": died["evalue"], "signal": "SIGSEGV"})
    result = run_check(CheckContext("cnn", execution=_execution(), run=run), Spec("runs_without_error", points=1))
    assert (result.status, result.score) == ("failed", 2 / 8)
    assert result.message == "the kernel was killed by SIGSEGV (a segmentation fault) in cell 3; 5 of 8 cells did not run"


def test_an_output_flood_is_named_as_such() -> None:
    flood = {"cell": 1, "ename": "OutputFlood", "evalue": "printed more than 1 MiB of output (an output flood) and was stopped"}
    run = run_record(cells_total=4, cells_run=4, errors=[flood], outputs_flooded=[1])
    result = run_check(CheckContext("cnn", execution=_execution(), run=run), Spec("runs_without_error", points=4))
    assert (result.score, result.message) == (3.0, "cell 2 printed more than 1 MiB of output (an output flood) and was stopped")
    stopped = CheckContext("cnn", execution=_execution("output", "printed more than 1 MiB on stdout (an output flood) and "
                                                                 "was stopped"), run=replace(run, running_cell=1))
    assert run_check(stopped, Spec("runs_without_error")).message == (
        "your code did not finish: it printed more than 1 MiB on stdout (an output flood) and was stopped in cell 2")


def test_cells_that_never_ran_do_not_pass() -> None:
    run = run_record(cells_total=3, cells_run=1)
    result = run_check(CheckContext("cnn", execution=_execution(), run=run), Spec("runs_without_error", points=3))
    assert (result.status, result.score, result.message) == ("failed", 1.0, "2 of 3 cells did not run")


def test_figures_present() -> None:
    ctx = CheckContext("cnn", probe=ProbeRecord.from_json(probe_record(figures=["figures/0.png"])))
    assert run_check(ctx, Spec("figures_present", min=1)).status == "passed"
    assert run_check(ctx, Spec("figures_present", min=2)).message == "your code produced 1 figure; the task asks for at least 2"


def test_within_budget() -> None:
    ctx = CheckContext("cnn", execution=_execution(wall_s=30.0), budget_s=50.0, budget_note="5x reference (10.0 s) = 50 s")
    assert run_check(ctx, Spec("within_budget")).status == "passed"
    slow = CheckContext("cnn", execution=_execution(wall_s=80.0), budget_s=50.0, budget_note="5x reference (10.0 s) = 50 s")
    assert run_check(slow, Spec("within_budget")).message == "your code took 80 s; the budget is 5x reference (10.0 s) = 50 s"


def test_unknown_check_names_the_known_ones() -> None:
    result = run_check(CheckContext("cnn"), Spec("paramter_count"))
    assert result.status == "error"
    assert "no check 'paramter_count'; known: architecture_matches" in result.message


def test_registry_lists_the_builtin_checks() -> None:
    assert {"architecture_matches", "parameter_count", "feature_width", "output_kind", "loss_choice", "test_accuracy",
            "per_class_accuracy", "forward_consistent", "runs_without_error", "figures_present", "within_budget"} <= set(known_checks())


def test_checks_run_one_at_a_time_across_threads(monkeypatch) -> None:
    import threading
    import time

    import harness.checks as checks

    running, most = [0], [0]
    guard = threading.Lock()

    def slow(ctx, spec) -> None:
        with guard:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with guard:
            running[0] -= 1

    monkeypatch.setitem(checks._CHECKS, "slow_check", checks.Registered(slow, NoParams))
    threads = [threading.Thread(target=run_check, args=(CheckContext(task_id=f"t{i}"), Spec("slow_check"))) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1
