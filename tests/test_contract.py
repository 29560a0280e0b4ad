"""The host-sandbox contract: records round-trip, a malformed record names its field, a forged type is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.artifacts import ArtifactError, load_artifacts
from harness.contract import (
    CallRecord,
    ContractError,
    ModelRecord,
    ProbeRecord,
    RunnerConfig,
    RunRecord,
)
from harness.engines.runner import error_entry, new_record
from harness.loading import load_submission
from harness.models import SandboxResult
from harness.pipeline import grade_submission, prepare_setup
from tests.benchmarks.test_grading_overhead import NOTEBOOK, _cnn_rubric
from tests.checks.fabricate import probe_record

MODEL = {
    "id": "m0", "name": "model", "origin": "instance", "class_name": "Net", "construct_error": None,
    "modules": [{"path": "fc", "type": "Linear", "hyper": {"in_features": 784, "out_features": 10}}],
    "layer_shapes": [{"path": "fc", "type": "Linear", "output_shape": [2, 10]}],
    "computation": {"error": None, "truncated": False, "problems": [],
                    "layers": [{"type": "Linear", "hyper": {"in_features": 784}, "path": "fc", "function": None,
                                "output_shape": [2, 10]}]},
    "input_shape": [784], "output_shape": [10], "forward_error": None, "trainable_parameters": 7850,
    "total_parameters": 7850, "bound": True, "trained": True, "trained_how": "optimizer",
    "built_at": {"file": "q1.py", "line": 12, "function": "<module>", "label": "q1.py line 12"},
    "state_dict": "models/m0/state_dict.pt", "outputs": {"mnist": "models/m0/outputs-mnist.pt"},
    "inputs": {"mnist": "models/m0/inputs-mnist.pt"},
}


def _run_json() -> dict:
    record = new_record("q1.py", "script")  # what the runner writes, field for field
    record.update(cells_total=1, cells_run=1, cell_seconds=[0.5], figure_cells={"figures/0.png": -1},
                  errors=[error_entry(-1, "ValueError", "bad", "line 3: x = 1", "Traceback ...")],
                  kernel_died={"cell": 0, "message": "the kernel died", "signal": "SIGKILL"},
                  timings={"total_s": 1.5}, missing_packages=["lightning"])
    return record


def test_every_record_round_trips_through_json() -> None:
    run = _run_json()
    assert RunRecord.from_json(run).to_json() == run
    probe = probe_record(models=[MODEL], losses=[{"name": "criterion", "type": "CrossEntropyLoss"}],
                         optimizers=[{"name": "opt", "type": "Adam", "lr": 0.001, "parameters": 2}],
                         calls={"loss": {"function": "f", "value": 1.5, "values": [1.5, 2.0], "error": None}},
                         callables=["f", "Net"], figures=["figures/0.png"])
    record = ProbeRecord.from_json(probe)
    assert ProbeRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert record.models[0].built_at.label == "q1.py line 12" and record.model("m0").computation.layers[0].path == "fc"
    assert record.calls["loss"] == CallRecord(function="f", value=1.5, values=(1.5, 2.0))
    config = RunnerConfig(format=1, kind="notebook", source="a.ipynb", workspace="/w", datasets=("mnist",),
                          input_shapes=((1, 28, 28), (784,)), eval={"mnist": "/gradebench/eval/mnist-images.npy"})
    assert RunnerConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


def test_a_candidate_whose_inspection_failed_needs_only_its_names() -> None:
    failed = ModelRecord.from_json({"id": "m1", "name": "net", "origin": "class", "probe_error": "RuntimeError: x"})
    assert (failed.class_name, failed.modules) == (None, ())
    with pytest.raises(ContractError, match=r"^models\[1\] has no class_name"):
        ModelRecord.from_json({"id": "m1", "name": "net", "origin": "class"}, "models[1]")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cells_run": None}, "cells_run is null, expected int"),
        ({"errors": [{"cell": 0, "ename": "E"}]}, r"errors\[0\]\.evalue is missing"),
        ({"kernel_died": {"cell": -3, "message": ""}}, r"kernel_died\.cell is below -1"),
        ({"figure_cells": {"figures/0.png": "1"}}, r"figure_cells\['figures/0.png'\] is str, expected int"),
        ({"cell_seconds": [1.0, float("inf")]}, r"cell_seconds\[1\] is not a finite number"),
        ({"missing_packages": ["os; rm -rf /"]}, r"missing_packages\[0\] is not a module name"),
    ],
)
def test_a_malformed_run_record_names_its_field(change: dict, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        RunRecord.from_json({**_run_json(), **change})


def nested(depth: int) -> dict:
    """A constructor argument: ``depth`` constructions nested in one another (the model holding it is one more)."""
    inner = {"class_name": "Encoder", "library": None, "args": [], "kwargs": {}}
    for _ in range(depth - 1):
        inner = {"class_name": "Wrapper", "library": None, "args": [{"__gradebench_module__": inner}], "kwargs": {}}
    return {"__gradebench_module__": inner}


def test_a_nested_construction_within_the_cap_is_read() -> None:
    """``Classifier(Sequential(Encoder()))``: three constructions, the most a record may nest."""
    constructor = {"args": [nested(2), 0.5], "kwargs": {"labels": ["a", None]}}
    record = ProbeRecord.from_json(probe_record(models=[{**MODEL, "constructor": constructor}]))
    assert record.models[0].constructor == constructor


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"trainable_parameters": True}, r"models\[0\]\.trainable_parameters is bool, expected int or null"),
        ({"trainable_parameters": 7850.0}, r"models\[0\]\.trainable_parameters is float, expected int or null"),
        ({"outputs": {"mnist": {"__reduce__": "os.system"}}}, r"models\[0\]\.outputs\['mnist'\] is an object, expected str"),
        ({"origin": "pickle"}, r"models\[0\]\.origin is 'pickle', expected one of 'instance', 'class'"),
        ({"built_at": {"file": "q1.py", "line": "12", "function": "f", "label": "x"}},
         r"models\[0\]\.built_at\.line is str, expected int"),
        ({"modules": [{"path": "fc", "type": "Linear", "hyper": []}]}, r"models\[0\]\.modules\[0\]\.hyper is a list"),
        ({"constructor": {"args": [{"__gradebench_module__": {"class_name": "os.system", "library": None, "args": [],
                                                              "kwargs": {}}}], "kwargs": {}}},
         r"models\[0\]\.constructor\.args\[0\]\['__gradebench_module__'\]\.class_name is 'os\.system', expected a "
         r"class name"),
        ({"constructor": {"args": [], "kwargs": {"encoder": {"__gradebench_module__": {
            "class_name": "Popen", "library": "subprocess", "args": [], "kwargs": {}}}}}},
         r"models\[0\]\.constructor\.kwargs\['encoder'\]\['__gradebench_module__'\]\.library is 'subprocess', "
         r"expected null or one of torch\.nn"),
        ({"constructor": {"args": [{"__gradebench_module__": {"class_name": "Encoder", "library": None,
                                                              "args": "12", "kwargs": {}}}], "kwargs": {}}},
         r"models\[0\]\.constructor\.args\[0\]\['__gradebench_module__'\]\.args is str, expected a list"),
        ({"constructor": {"args": [[{"__gradebench_module__": {}, "latent": 12}]], "kwargs": {}}},
         r"models\[0\]\.constructor\.args\[0\]\[0\] holds '__gradebench_module__' beside other keys"),
        ({"constructor": {"args": [nested(3)], "kwargs": {}}},
         r"models\[0\]\.constructor(\.args\[0\]\['__gradebench_module__'\]){3} nests constructions more than 3 deep"),
        ({"constructor": {"args": [1], "kwargs": {}, "library": "torch.nn"}},
         r"models\[0\]\.constructor has the keys \['args', 'kwargs', 'library'\], expected args and kwargs"),
    ],
)
def test_a_forged_type_is_refused(model: dict, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        ProbeRecord.from_json(probe_record(models=[{**MODEL, **model}]))


def test_the_host_refuses_a_forged_record_with_the_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps(_run_json()))
    (tmp_path / "probe.json").write_text(json.dumps(probe_record(models=[{**MODEL, "trained": "yes"}])))
    with pytest.raises(ArtifactError, match=r"^probe.json: models\[0\]\.trained is str, expected bool or null$"):
        load_artifacts(tmp_path)


class ForgesProbeRecord:
    """A sandbox whose run leaves a well-formed run.json and a probe.json with a forged field (no code runs)."""

    isolated = True
    warning = ""

    def run(self, command, *, workspace, limits, mounts=(), env=None, cwd=None, stdin=None) -> SandboxResult:
        artifacts = next(m.source for m in mounts if m.writable)
        run = {**new_record("CNNMNIST.ipynb", "notebook"), "cells_total": 7, "cells_run": 7}
        (artifacts / "run.json").write_text(json.dumps(run))
        (artifacts / "probe.json").write_text(json.dumps(probe_record(models=[{**MODEL, "trainable_parameters": "lots"}])))
        return SandboxResult("ok", "exit code 0", 0, 0.01, 0.0, 0, "", "", True)


def test_a_forged_record_makes_the_tasks_checks_grader_errors_naming_the_field(tmp_path: Path, small_data: Path) -> None:
    setup = prepare_setup(_cnn_rubric(tmp_path / "cnn.yaml"), small_data, tmp_path / "out", sandbox=ForgesProbeRecord(),
                          profile="fast")
    report = grade_submission(load_submission(NOTEBOOK, tmp_path / "staging", student="student0"), setup)
    checks = [result for task in report.tasks for result in task.checks]
    assert checks and {result.status for result in checks} == {"error"}
    assert checks[0].message == ("the records of running CNNMNIST.ipynb are unusable: probe.json: "
                                 "models[0].trainable_parameters is str, expected int or null")


def test_the_contract_imports_nothing_but_the_standard_library() -> None:
    """The runner imports it in the sandbox before torch: importing it must not load any third-party module."""
    code = ("import sys; before = set(sys.modules); import harness.contract; "
            "print(sorted(m for m in set(sys.modules) - before if not m.startswith(('harness', '_')) "
            "and m.split('.')[0] not in sys.stdlib_module_names))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert found == "[]"



def test_a_probe_record_loses_nothing_the_probe_writes(tmp_path: Path) -> None:
    """Every field the probe writes is declared: reading its record and writing it back gives the same JSON."""
    import numpy as np
    import torch
    from torch import nn

    from harness.probes import probe

    images = tmp_path / "mnist-images.npy"
    np.save(images, np.random.default_rng(0).integers(0, 256, size=(8, 28, 28), dtype=np.uint8))
    tied = nn.Sequential(nn.Flatten(), nn.Linear(784, 784, bias=False), nn.ReLU(), nn.Linear(784, 784, bias=False))
    tied[3].weight = tied[1].weight  # tied weights: the probe records the alias
    namespace = {"__name__": "__main__", "model": nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), "tied": tied,
                 "criterion": nn.CrossEntropyLoss(), "optimizer": torch.optim.SGD(tied.parameters(), lr=0.1),
                 "accuracy": 0.5}
    config = {"artifacts": str(tmp_path / "artifacts"), "datasets": ["mnist"], "eval": {"mnist": str(images)},
              "task_values": ["accuracy"], "calls": [{"id": "acc", "names": ["missing"], "inputs": "vae_loss"}]}
    written = json.loads(json.dumps(probe.run(config, namespace)))
    assert len(written["models"]) == 2 and any(m["state_aliases"] for m in written["models"])
    for model in written["models"]:  # back as written; fields the probe left out come back at their defaults
        back = ModelRecord.from_json(model).to_json()
        assert {name: back[name] for name in model} == model
    record = ProbeRecord.from_json(written).to_json()
    assert {name: record[name] for name in written if name not in ("models", "calls")} == {
        name: value for name, value in written.items() if name not in ("models", "calls")}
    assert record["calls"] == {k: {"result_type": None, **v} for k, v in written["calls"].items()}


def test_the_rubrics_dataset_names_are_the_contracts() -> None:
    """A rubric's ``Dataset`` must stay a Literal (it validates rubric files), so it is held to DATASETS here."""
    from typing import get_args

    from harness.contract import DATASETS, DEFAULT_INPUT_SHAPES, TORCHVISION_FOLDERS
    from harness.rubric import Dataset

    assert get_args(Dataset) == DATASETS
    assert set(DEFAULT_INPUT_SHAPES) == set(DATASETS) and set(TORCHVISION_FOLDERS) <= set(DATASETS)


def test_run_json_has_one_cap_wherever_the_host_reads_it(tmp_path: Path) -> None:
    from harness.contract import MAX_JSON_BYTES
    from harness.engines import read_run_json
    from harness.errors import HarnessError

    text = json.dumps(_run_json())
    (tmp_path / "run.json").write_text(text + " " * (MAX_JSON_BYTES + 1 - len(text)))
    cap = f"{MAX_JSON_BYTES + 1:,} bytes, over the {MAX_JSON_BYTES:,} cap"
    with pytest.raises(HarnessError, match=cap):
        read_run_json(tmp_path)
    with pytest.raises(ArtifactError, match=f"run.json is {cap}"):
        load_artifacts(tmp_path)
    (tmp_path / "run.json").write_text(text + " " * (MAX_JSON_BYTES - len(text)))  # at the cap: read by both
    assert read_run_json(tmp_path).missing_packages == load_artifacts(tmp_path).run.missing_packages == ("lightning",)


class WritesRunJson:
    """A sandbox whose 'run' leaves the runner's run.json (one error) in the records folder."""

    isolated = False
    warning = ""

    def run(self, command, *, workspace, limits, mounts=(), env=None, cwd=None, stdin=None):
        records = Path(command[command.index("--records") + 1])
        (records / "run.json").write_text(json.dumps(_run_json()))
        return SandboxResult(verdict="ok", message="", returncode=0, wall_s=0.1, cpu_s=0.1, peak_memory_bytes=0,
                             stdout="", stderr="", isolated=False)


def test_the_engine_reads_run_json_once_and_passes_it_on(tmp_path: Path) -> None:
    from harness.engines import Engine, RunSettings
    from harness.models import Submission
    from harness.pipeline import classify_run
    from harness.store import execution_from_dict, execution_to_dict

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "q1.py").write_text("x = 1\n")
    submission = Submission(student="s", source=tmp_path / "sub", root=tmp_path / "sub", files=("q1.py",),
                            kind="folder", content_hash="h")
    execution = Engine(WritesRunJson(), "script").run(submission, "q1.py", tmp_path / "out", RunSettings())
    assert execution.run is not None and execution.run.errors[0].evalue == "bad"
    # the checks get the record the engine read: run.json is not read a second time
    (execution.artifacts_dir / "run.json").write_text("not json any more")
    outcome = classify_run(execution)
    assert outcome.unusable == "" and outcome.records.run is execution.run
    # the record is passed on in memory only: a stored run reads its artifacts folder again
    stored = execution_to_dict(execution)
    assert "run" not in stored and execution_from_dict(stored).run is None
    assert "run.json is not valid JSON" in classify_run(execution_from_dict(stored)).unusable
