"""Hostile submissions (submissions/hostile) graded as one batch with the reference: each is contained.

Every case gets the verdict and the message a TA should read, the reference beside them still
gets full marks, and nothing outside the workspaces changes: the installed harness, the rubric,
the batch folder, the hidden labels, the store's earlier rows and a canary file in $HOME hash
the same before and after. Grading hostile code needs bubblewrap (in CI a missing bwrap fails).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import nbformat
import pytest

import harness
from harness.data import prepare
from harness.errors import SandboxError
from harness.events import LoadWarning, ProgressEvent
from harness.models import GiB, MiB, Limits
from harness.pipeline import grade_batch, prepare_setup
from harness.sandbox import BubblewrapSandbox
from harness.scoring import score_load_failure
from harness.store import ResultStore, report_to_dict

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ROOT / "submissions" / "hostile"
REFERENCE = ROOT / "submissions" / "dl2025-a2" / "reference"
RUBRIC = ROOT / "tests" / "fixtures" / "rubrics" / "hostile.yaml"
CNN_POINTS = 13.0
WALL = "40 s"
LIMITS = Limits(memory_bytes=1 * GiB, max_processes=128, file_size_bytes=64 * MiB, output_bytes=1 * MiB,
                workspace_bytes=256 * MiB)
"""The base limits of the batch (the wall-clock limit comes from the rubric's 40 s budget)."""


def _sandbox() -> BubblewrapSandbox:
    """Bubblewrap: in CI its absence fails; elsewhere hostile code is not run without it."""
    if os.environ.get("CI"):
        return BubblewrapSandbox()
    try:
        return BubblewrapSandbox()
    except SandboxError as error:
        pytest.skip(f"grading hostile submissions needs bubblewrap: {error}")


def _digest(path: Path) -> str:
    """A hash of a file's bytes, or of a symbolic link's target."""
    if path.is_symlink():
        return "link:" + os.readlink(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(paths: dict[str, Path]) -> dict[str, str]:
    """Per watched file (every entry of a watched folder, links not followed): its hash; folders listed too."""
    hashes = {}
    for name, path in paths.items():
        entries = [path] if not path.is_dir() or path.is_symlink() else [path, *sorted(path.rglob("*"))]
        for entry in entries:
            if "__pycache__" in entry.parts:
                continue
            key = f"{name}: {entry}"
            hashes[key] = "folder" if entry.is_dir() and not entry.is_symlink() else _digest(entry)
    return hashes


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The hostile corpus and the reference graded once, as one batch with two workers."""
    sandbox = _sandbox()
    root = tmp_path_factory.mktemp("hostile")
    data, out, batch = root / "data", root / "out", root / "batch"
    prepare(data, datasets=("mnist",), source="synthetic", small=True, hidden_seed=1234)
    batch.mkdir()
    for case in sorted(HOSTILE.iterdir()):
        shutil.copytree(case, batch / case.name, symlinks=True)
    honest = nbformat.read(HOSTILE / "forged_probe" / "CNNMNIST.ipynb", as_version=4)
    honest.cells = honest.cells[:-1]  # the same notebook without the cell that replaces the probe
    (batch / "forged_probe_honest").mkdir()
    nbformat.write(honest, batch / "forged_probe_honest" / "CNNMNIST.ipynb")
    shutil.copytree(REFERENCE, batch / "reference")
    canary = Path.home() / f".gradebench-canary-{uuid.uuid4().hex[:8]}"
    canary.write_text("the sandbox must not reach this\n")
    labels = data / "hidden" / "mnist" / "labels.npy"
    secrets = {
        "read hidden labels": labels, "read rubric": RUBRIC, "read store": out / "results.sqlite",
        "read other submission": batch / "reference" / "CNNMNIST.ipynb", "read staging": out / "staging",
        "read staged other submission": out / "staging" / "reference", "read canary": canary,
        "read home ssh": Path.home() / ".ssh", "read data folder": data,
        "read other workspace": out / "work" / "reference", "write other workspace": out / "work" / "reference",
        "write hidden labels": labels, "write rubric": RUBRIC, "write store": out / "results.sqlite",
        "write reports folder": out, "write other submission": batch / "reference" / "CNNMNIST.ipynb",
        "write batch folder": batch, "write canary": canary, "write home": Path.home(),
    }
    for case in ("read_secrets", "write_outside"):  # part of the submission: the paths a student would guess
        (batch / case / "targets.json").write_text(json.dumps({k: str(v) for k, v in secrets.items()}))
    setup = prepare_setup(RUBRIC, data, out, sandbox=sandbox)
    setup.limits = LIMITS
    setup.keep_workspaces = True  # the hostile notebooks leave their reports there
    earlier = score_load_failure(setup.rubric, "earlier_student", "earlier.zip", "graded before", content_hash="e" * 64,
                                 profile=setup.profile)
    with ResultStore(setup.store_path) as store:
        store.put(earlier)
    watched = {"harness package": Path(harness.__file__).parent, "rubric": RUBRIC, "batch": batch,
               "hidden labels": labels, "canary": canary, "hidden data": data / "hidden"}
    before = _snapshot(watched)
    try:
        events: list[ProgressEvent] = []
        summary = grade_batch(batch, setup, jobs=2, on_event=events.append)
        after = _snapshot(watched)
        with ResultStore(setup.store_path) as store:
            earlier_after = store.get(earlier.content_hash, earlier.rubric_hash, earlier.profile)
            stored = {r.student: r for r in store.all(setup.rubric.hash)}
    finally:
        canary.unlink()
    reports = {r.student: r for r in summary.reports}
    yield {"setup": setup, "reports": reports, "before": before, "after": after, "stored": stored,
           "earlier": (report_to_dict(earlier), report_to_dict(earlier_after) if earlier_after else None),
           "out": out, "package": Path(harness.__file__).parent, "canary": canary, "labels": labels,
           "warnings": [event for event in events if isinstance(event, LoadWarning)]}


def _cnn(report):
    return next(t for t in report.tasks if t.task == "cnn")


def _check(report, name):
    return next(c for c in _cnn(report).checks if c.check == name)


def _sandbox_result(report):
    (execution,) = report.executions
    return execution.sandbox


def _hostile_report(graded, student: str) -> dict[str, str]:
    return json.loads((graded["out"] / "work" / student / "hostile-report.json").read_text())


def test_every_submission_is_graded(graded) -> None:
    expected = sorted([p.name for p in HOSTILE.iterdir()] + ["reference", "forged_probe_honest"])
    assert sorted(graded["reports"]) == expected


def test_the_reference_still_gets_full_marks(graded) -> None:
    reference = graded["reports"]["reference"]
    assert [(c.check, c.message) for c in _cnn(reference).checks if c.status != "passed"] == []
    assert _cnn(reference).score == CNN_POINTS


def test_nothing_outside_the_workspaces_changed(graded) -> None:
    before, after = graded["before"], graded["after"]
    assert sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)) == []
    earlier, earlier_after = graded["earlier"]
    assert earlier_after == earlier
    package, out = graded["package"], graded["out"]
    planted = [p for folder in (package, out / "students", out / "staging") for p in folder.rglob("HOSTILE_WAS_HERE.txt")]
    assert planted == []
    assert not (out / "HOSTILE_WAS_HERE.txt").exists() and not Path("/tmp/hostile-fill-tmp").exists()


@pytest.mark.parametrize(
    ("student", "verdict", "message", "where"),
    [
        ("infinite_loop", "timeout", f"timed out after {WALL}", " in cell 2"),
        ("sleep_forever", "timeout", f"timed out after {WALL}", " in cell 2"),
        ("endless_training", "timeout", f"timed out after {WALL}", " in cell 7"),
        ("memory_hog", "memory", "exceeded the 1 GiB memory limit", " in cell 2"),
        ("fork_bomb", "processes", "started more than 128 processes (threads count too)", ""),
        ("thread_storm", "processes", "started more than 128 processes (threads count too)", ""),
        ("huge_file", "file_size", "wrote a file larger than 64 MiB", ""),
        ("fill_workspace", "workspace", "wrote more than 256 MiB into its working folder", " in cell 2"),
    ],
)
def test_runaway_and_resource_hogs_are_stopped(graded, student, verdict, message, where) -> None:
    """Each is stopped with its verdict; the student reads it, with the cell that was running when it was stopped
    (none when the payload was refused and the notebook ran to its end)."""
    report = graded["reports"][student]
    result = _sandbox_result(report)
    assert (result.verdict, result.message) == (verdict, message)
    assert _check(report, "runs_without_error").message == f"your code did not finish: it {message}{where}"
    if verdict == "timeout":
        assert _check(report, "within_budget").message == f"your code timed out after {WALL}{where} (budget: {WALL})"
    assert _cnn(report).score <= 1.0


def test_the_kernel_cannot_kill_the_grader(graded) -> None:
    """As root the kernel runs as a user of its own: its SIGKILL to the runner is refused and the run goes on to
    its end. With one user only (bubblewrap without root) the runner is killed, and the run is stopped for it."""
    report = graded["reports"]["kill_parent"]
    result = _sandbox_result(report)
    runs = _check(report, "runs_without_error").message
    if os.geteuid() == 0:
        assert (result.verdict, result.message) == ("ok", "exit code 0")
        assert runs == "cell 2 raised PermissionError: [Errno 1] Operation not permitted"
    else:
        assert (result.verdict, result.message) == ("killed", "was killed by SIGKILL")
        assert runs == "your code did not finish: it was killed by SIGKILL in cell 2"
    assert _check(report, "test_accuracy").status == "failed"
    assert _cnn(report).score <= 1.5  # the time budget's points at most: the notebook trains nothing


def test_a_full_working_folder_never_reached_the_host_disk(graded) -> None:
    kept = graded["out"] / "work" / "fill_workspace"  # kept for this test; by default removed after grading
    size = sum(p.stat().st_size for p in kept.rglob("*") if p.is_file())
    if os.geteuid() == 0:  # a tmpfs of 256 MiB and a 64 MiB margin: writes past it fail (or the run is stopped first)
        assert size <= 320 * MiB
        report = kept / "hostile-report.json"
        if report.exists():
            assert json.loads(report.read_text())["fill"] == "blocked: OSError: [Errno 28] No space left on device"
    else:  # measured every 0.25 s: stopped long before its 3 GiB
        assert size < 3 * 2**30


def test_a_timed_out_run_says_which_cell_was_running(graded) -> None:
    run = json.loads((graded["out"] / "artifacts" / "infinite_loop" / "0-CNNMNIST" / "artifacts" / "run.json").read_text())
    assert run["running_cell"] == 1  # the loop, after the recorder cell


def test_resource_payloads_met_the_limits_inside(graded) -> None:
    assert _hostile_report(graded, "huge_file") == {"write": "blocked: OSError: [Errno 27] File too large",
                                                    "written": 64 * MiB}
    forks = _hostile_report(graded, "fork_bomb")
    assert forks["fork"] == "blocked: BlockingIOError: [Errno 11] Resource temporarily unavailable"
    assert forks["children"] < 128
    threads = _hostile_report(graded, "thread_storm")
    assert threads["threads"] == "blocked: RuntimeError: can't start new thread" and threads["started"] < 128
    fill = _hostile_report(graded, "fill_tmp")
    assert fill["fill"] == "blocked: OSError: [Errno 28] No space left on device"
    assert fill["written"] <= 64 * MiB and fill["tmp"] == "/tmp"


def test_a_flood_of_output_is_cut(graded) -> None:
    report = graded["reports"]["flood_stdout"]
    result = _sandbox_result(report)
    message = "printed more than 1 MiB on stdout (an output flood) and was stopped"
    assert (result.verdict, result.message) == ("output", message)
    assert _check(report, "runs_without_error").message == f"your code did not finish: it {message} in cell 2"
    assert len(result.stdout.encode()) <= 1 * MiB + 200
    executed = graded["out"] / "artifacts" / "flood_stdout" / "0-CNNMNIST" / "artifacts" / "executed.ipynb"
    assert not executed.exists()  # the run was stopped in the flooding cell, before the runner saved it


def test_only_the_loopback_is_reachable(graded) -> None:
    network = _hostile_report(graded, "network")
    assert network["loopback"] == "done: ping"
    assert network["outside"] == "blocked: OSError: [Errno 101] Network is unreachable"
    assert network["dns"].startswith("blocked: gaierror")


@pytest.mark.parametrize("student", ["read_secrets", "write_outside", "symlink_escape"])
def test_files_outside_the_workspace_are_out_of_reach(graded, student) -> None:
    attempts = _hostile_report(graded, student)
    assert len(attempts) >= 3
    reached = {name: outcome for name, outcome in attempts.items() if not outcome.startswith("blocked")}
    assert reached == {}
    if student == "read_secrets":
        assert {f"read hidden labels: {graded['labels']}", f"read canary: {graded['canary']}"} <= set(attempts)


def test_symbolic_links_never_reach_the_workspace(graded) -> None:
    workspace = graded["out"] / "work" / "symlink_escape"
    assert sorted(p.name for p in workspace.iterdir() if p.name != "hostile-report.json") == ["CNNMNIST.ipynb"]
    skipped = [w.message for w in graded["warnings"] if w.student == "symlink_escape"]
    assert "skipped symlink labels.npy -> ../../data/hidden/mnist/labels.npy: it points outside the submission" in skipped
    assert len(skipped) == 3 and all(m.startswith("skipped symlink ") for m in skipped)


def test_patched_torch_does_not_fake_the_parameter_count(graded) -> None:
    report = graded["reports"]["fake_parameter_count"]
    assert _check(report, "parameter_count").message == (
        "the model has 43,530 trainable parameters; the assignment's network has 12,810")
    assert _check(report, "architecture_matches").status == "failed"
    assert _check(report, "test_accuracy").status == "passed"  # torch.argmax patched inside; the host's is its own


def test_a_forward_pass_that_is_not_the_layers_is_caught(graded) -> None:
    report = graded["reports"]["fake_forward"]
    check = _check(report, "forward_consistent")
    assert check.status == "failed"
    assert check.message.startswith(
        "the predictions your notebook exported are not what your network computes on the test images: the grader "
        "ran the weights it exported in the assignment's network on all 1,000 test images")
    accuracy = _check(report, "test_accuracy")  # the hidden helper's predictions are not believed
    assert (accuracy.status, accuracy.message) == ("failed", check.message + accuracy.message[len(check.message):])
    assert accuracy.message[len(check.message):].startswith(" (the grader's own run reaches ")
    assert accuracy.details["measured"] < 0.5  # the untrained layers, run by the grader


def test_a_replaced_probe_gains_nothing_over_the_honest_notebook(graded) -> None:
    forged, honest = graded["reports"]["forged_probe"], graded["reports"]["forged_probe_honest"]
    assert _cnn(forged).score < _cnn(honest).score
    refused = (
        "your notebook exported 1 test image with its predictions; the grader gave it 1,000 and expects the first "
        "1,000 back: the predictions your notebook exported cannot be believed"
    )
    for name in ("test_accuracy", "per_class_accuracy", "forward_consistent"):
        assert (_check(forged, name).status, _check(forged, name).message) == ("failed", refused)
    # The ghost (the assignment's layers, never trained) is passed over: the network the notebook really trained was
    # recorded when it was built, and its true layers are graded (its second MaxPool2d is missing).
    for name in ("architecture_matches", "parameter_count", "feature_width"):
        assert _check(forged, name).status == "failed"
    assert "expected Linear(800->10), found Linear(3872->10)" in _check(forged, "architecture_matches").message
    assert {c.check for c in _cnn(honest).checks if c.status == "passed"} >= {"test_accuracy", "per_class_accuracy"}


def test_a_forged_probe_record_and_fake_results_gain_nothing(graded) -> None:
    report = graded["reports"]["fake_score"]
    failures = {c.check: c.message for c in _cnn(report).checks if c.status != "passed"}
    assert failures["architecture_matches"].startswith(
        "the layers recorded while your code ran do not match the weights your model exported")
    assert failures["parameter_count"] == "your model's weights were not exported, so its parameter count cannot be confirmed"
    assert {"test_accuracy", "per_class_accuracy", "forward_consistent"} <= set(failures)
    assert _cnn(report).score <= 5.0
    stored = graded["stored"]["fake_score"]
    assert stored.score == pytest.approx(report.score)
    written = json.loads((graded["out"] / "students" / "fake_score" / "report.json").read_text())
    assert written["score"] == pytest.approx(report.score)
    out = graded["out"]
    own = (out / "work" / "fake_score", out / "artifacts" / "fake_score")  # its workspace and artifacts: writable
    outside = {k: v for k, v in _hostile_report(graded, "fake_score").items()
               if not Path(k.removeprefix("write ")).is_relative_to(own[0]) and not Path(k.removeprefix("write ")).is_relative_to(own[1])}
    assert len(outside) == 6 and all(v.startswith("blocked") for v in outside.values())


# -- the host-side guards, without a sandbox ------------------------------------------------------------------


def _wrong_flatten():
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(3872, 10), nn.LogSoftmax(dim=1))


def test_the_probe_counts_parameters_with_torch_as_it_was_before_the_students_code(tmp_path, monkeypatch) -> None:
    import torch

    from harness.probes import probe

    monkeypatch.setattr(torch.Tensor, "numel", lambda self: 1)  # what a student's cell may do
    record = probe.run({"artifacts": str(tmp_path), "datasets": ["mnist"]}, {"model": _wrong_flatten()})
    (model,) = record["models"]
    assert (model["trainable_parameters"], model["total_parameters"]) == (43_530, 43_530)


def test_a_parameter_count_that_the_exported_weights_contradict_fails(tmp_path) -> None:
    from harness.checks import run_check
    from harness.checks.context import CheckContext
    from reference.classifiers import CNN
    from tests.checks.conftest import Spec, record

    candidate = {**record(_wrong_flatten(), tmp_path), "trainable_parameters": 12_810, "total_parameters": 12_810}
    ctx = CheckContext(task_id="cnn", model=candidate, artifacts_dir=tmp_path, dataset="mnist", reference_model=CNN())
    result = run_check(ctx, Spec("parameter_count", equals=12_810))
    assert (result.status, result.message) == ("failed", "the weights your model exported hold 43,530 parameters, "
                                               "but 12,810 were counted while your code ran (was torch patched?)")


def test_layers_that_the_exported_weights_contradict_fail(tmp_path) -> None:
    from harness.architecture import describe_layers
    from harness.checks import run_check
    from harness.checks.context import CheckContext
    from reference.classifiers import CNN
    from tests.checks.conftest import Spec, record

    import torch

    from harness.probes.trace import trace_forward

    # layers claimed (the module list and the traced computation both forged), weights not
    forged = trace_forward(CNN().eval(), torch.zeros(2, 1, 28, 28))
    candidate = {**record(_wrong_flatten(), tmp_path), "modules": describe_layers(CNN()), "computation": forged}
    ctx = CheckContext(task_id="cnn", model=candidate, artifacts_dir=tmp_path, dataset="mnist", reference_model=CNN(),
                       reference_layers=describe_layers(CNN()))
    result = run_check(ctx, Spec("architecture_matches"))
    assert result.status == "failed"
    assert result.message.startswith("the layers recorded while your code ran do not match the weights your model exported")


def test_tied_weights_are_counted_once(tmp_path) -> None:
    from torch import nn

    from harness.checks import run_check
    from harness.checks.context import CheckContext
    from harness.probes import probe
    from tests.checks.conftest import Spec

    encoder, decoder = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)
    decoder.weight = encoder.weight  # one tensor, two entries of the state_dict
    record = probe.run({"artifacts": str(tmp_path), "input_shapes": [[4]]}, {"model": nn.Sequential(encoder, decoder)})
    (model,) = record["models"]
    assert (model["state_aliases"], model["total_parameters"]) == ({"1.weight": "0.weight"}, 16)
    ctx = CheckContext(task_id="tied", model=model, artifacts_dir=tmp_path)
    assert run_check(ctx, Spec("parameter_count", equals=16)).status == "passed"


def test_a_ghost_with_a_weight_free_layer_more_gains_no_accuracy(graded) -> None:
    """A replaced probe keeps only a ghost on record whose layers are the assignment's and an Identity more (so the
    host cannot run it as the assignment's network) with another model's predictions: a second, clean process
    builds the ghost's class from the notebook's definitions, runs its weights, and the predictions are refused."""
    report = graded["reports"]["forged_ghost_layer"]
    refused = (
        "the predictions your notebook exported are not what your network computes on the test images: the grader "
        "built your class again in a clean process from your definitions, loaded the weights your notebook exported "
        "and ran it on all 1,000 test images, and the predictions differ on "
    )
    for name in ("test_accuracy", "per_class_accuracy", "forward_consistent"):
        check = _check(report, name)
        assert (check.status, check.message[: len(refused)]) == ("failed", refused)
    assert _check(report, "test_accuracy").details["measured"] < 0.5  # the ghost's untrained weights, run again
    honest = graded["reports"]["forged_probe_honest"]  # the same training without the forgery
    assert _cnn(report).score < _cnn(honest).score


def test_a_record_naming_a_class_the_notebook_never_defines_holds_its_points(graded) -> None:
    """A replaced probe whose record names a class no clean second run can build: its predictions (another model's)
    cannot be checked, so the checks resting on them earn nothing until a TA has reviewed the notebook."""
    report = graded["reports"]["forged_lost_class"]
    reason = ("the grader could not rebuild your model to confirm its predictions (no class Vanished is defined in "
              "your code outside the cells that ran it)")
    held = [c for c in _cnn(report).checks if c.held]
    assert {c.check for c in held} == {"test_accuracy", "per_class_accuracy", "forward_consistent",
                                       "architecture_matches", "parameter_count", "feature_width"}
    assert all(c.held == reason for c in held)
    cnn = _cnn(report)
    assert (cnn.review, cnn.note, cnn.held) == ("pending", "held for a TA's review", sum(c.score for c in held))
    assert cnn.score == sum(c.score for c in cnn.checks if not c.held)  # what the host checked itself, no more
    assert report.held_points == cnn.held > 0
