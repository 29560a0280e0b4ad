"""What a check may read: the task's run, the probe's records, the chosen model, the reference.

Built on the host by the pipeline, one per task. Tensors come from the artifacts folder
through ``harness.artifacts``: plain tensors only, and only from inside that folder.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.architecture import WEIGHTED, compare_computation, compare_layers, layers_of
from harness.artifacts import Artifacts
from harness.checks.verify import Verdict, verify
from harness.contract import ProbeRecord, RunRecord
from harness.models import ExecutionResult


@dataclass
class CheckContext:
    """Everything the checks of one task read; ``details`` collects figures for the report."""

    task_id: str
    """Rubric task id."""
    execution: ExecutionResult | None = None
    """How the task's source ran (None when it never ran)."""
    run: RunRecord | None = None
    """The runner's run.json (cells, errors), validated (``harness.contract``)."""
    probe: ProbeRecord | None = None
    """The probe's probe.json, validated (``harness.contract``); None when the probe never ran."""
    artifacts_dir: Path | None = None
    """Host folder with the exported tensors and figures."""
    model: dict[str, Any] | None = None
    """The chosen model candidate (see ``select_model``), as JSON (``ModelRecord.to_json()``); None if no model
    was found."""
    model_note: str = ""
    """How the model was chosen, or why none was: quoted in messages."""
    dataset: str | None = None
    """Evaluation dataset of the task (``mnist``...)."""
    reference_layers: list[dict[str, Any]] | None = None
    """The reference model described with ``harness.architecture.describe_layers``."""
    reference_model: torch.nn.Module | None = None
    """A fresh instance of the reference class (for loading exported weights); None in a self-check from a
    bundle, which carries the reference's description but not its code (``reference_code``)."""
    reference_code: bool = True
    """Whether the reference classes are installed (the course repository). False in a student's self-check
    from a bundle (``harness.bundle``): checks that need the reference network itself report that they are
    not available there (``harness.checks.NotAvailable``) instead of failing or passing."""
    reference_accepted: dict[str, list[dict[str, Any]]] | None = None
    """The layers of the other networks a task accepts (``architecture_matches``' ``params.also``) by spec, as
    a bundle publishes them; None: built from the specs (the reference code is installed)."""
    reference_metrics: dict[str, Any] = field(default_factory=dict)
    """Calibrated metrics of the reference on the same data (``test_accuracy``...)."""
    reference_seconds: float | None = None
    """The reference's calibrated wall time for this task, for budgets."""
    budget_s: float | None = None
    """Wall-clock seconds the task's run may take (from the rubric's budget and the calibration)."""
    budget_note: str = ""
    """How the budget was set, e.g. ``5x reference (42.0 s) = 210 s``."""
    hidden_labels: np.ndarray | None = None
    """Labels of the hidden evaluation images (host only: never sent into the sandbox)."""
    hidden_images: np.ndarray | None = None
    """The hidden evaluation images as the host wrote them for the sandbox (uint8, (N, H, W) or (N, H, W, C)):
    what the exported inputs and predictions are held against."""
    fixed_architecture: bool = True
    """The task prescribes the network (rubric ``architecture: fixed``): exported weights that fit the
    reference network are run in it on the host, and the exported predictions must agree."""
    source_text: str = ""
    """The task's code for static checks: its file (notebook code cells joined, or the script), then the
    modules its run file imports and the package's helper modules (``harness.matching.SourcePlan.static_files``)."""
    run_died: str = ""
    """Why the task's script did no work at all (it stopped at its first imports, or did not parse); empty when
    it ran. Checks that credit what a run did (time, the loss it trained with) earn nothing then."""
    data_dir: Path | None = None
    """The prepared data folder (``harness.data.load_split``): public train/test images for host computations."""
    related: dict[str, CheckContext] = field(default_factory=dict)
    """Contexts of the tasks graded earlier in the same submission, by task id (cross-task checks read them)."""
    records: Artifacts | None = None
    """The validated artifacts folder (``harness.artifacts.load_artifacts``); built from the fields above when absent."""
    details: dict[str, Any] = field(default_factory=dict)
    """Filled by the running check with figures worth showing; emptied around each check."""
    rebuild: Callable[[str, Any, Any, torch.Tensor], torch.Tensor | str] | None = None
    """Builds the student's own class again in a second, clean sandboxed process and runs it
    (``harness.checks.rebuild.Rebuilder``: class name, constructor record, weights, inputs); None: not offered."""
    verdict: Verdict | None = None
    """The host's verdict on the chosen model's exported predictions, made on first use (``verified_predictions``)."""

    def require_related(self, task_id: str) -> CheckContext:
        """The context of ``task_id``, graded earlier; a harness error when the rubric did not grade it first."""
        try:
            return self.related[task_id]
        except KeyError:
            raise RuntimeError(
                f"task {task_id!r} was not graded before task {self.task_id!r} (the rubric must list it first)"
            ) from None

    def require_data_dir(self) -> Path:
        """The prepared data folder; a harness error when the pipeline gave none."""
        if self.data_dir is None:
            raise RuntimeError(f"task {self.task_id!r} needs the prepared data folder, which was not given")
        return self.data_dir

    def require_work(self, what: str) -> None:
        """Fail the check when the script stopped before doing any work: ``what`` says what could not be credited."""
        assert not self.run_died, f"{self.run_died}, so {what}"

    def require_model(self) -> dict[str, Any]:
        """The chosen model record; fails the check with the reason when there is none."""
        assert self.model is not None, self.model_note or "no PyTorch model (nn.Module) was found after running your code"
        return self.model

    def load_tensor(self, relative: str) -> torch.Tensor | dict[str, torch.Tensor]:
        """Load a tensor file the probe exported (``harness.artifacts``: inside the folder, plain tensors only)."""
        return self.artifacts().load_tensor(relative)

    def artifacts(self) -> Artifacts:
        """The artifacts folder as ``harness.artifacts`` reads it (tensors, figure descriptions), made once."""
        if self.records is None:
            if self.artifacts_dir is None:
                raise FileNotFoundError("no artifacts were exported for this task")
            self.records = Artifacts(root=self.artifacts_dir.resolve(), run=self.run, probe=self.probe, figures=())
        return self.records

    def stopped_with(self) -> str:
        """``your code stopped with FileNotFoundError: ...`` when the run raised; empty otherwise."""
        errors = self.execution.errors if self.execution is not None else ()
        if not errors:
            return ""
        first = errors[0]
        evalue = first.evalue if len(first.evalue) <= 200 else first.evalue[:200] + "..."
        return f"your code stopped with {first.ename}: {evalue}"

    def model_outputs(self) -> torch.Tensor:
        """The chosen model's raw outputs on the hidden evaluation images; fails the check if there are none."""
        model = self.require_model()
        relative = (model.get("outputs") or {}).get(self.dataset or "")
        if not relative:
            reason = model.get("forward_error") or model.get("construct_error")
            if model.get("origin") == "class":
                reason = f"only the class {model.get('class_name')} was found, never a trained instance of it"
                stopped = self.stopped_with()
                if stopped:
                    reason += f" ({stopped} before it built one)"
            raise AssertionError(f"your model produced no predictions on the evaluation images: {reason or 'unknown reason'}")
        outputs = self.load_tensor(relative)
        assert isinstance(outputs, torch.Tensor), "the exported predictions are not a tensor"
        return outputs.float()

    def _computes_otherwise(self, model: dict[str, Any]) -> bool:
        """Whether the model runs the reference's weighted layers, all its own modules, with other activations
        between them (an F.relu on the code): then running its weights in the reference computes something else.

        A weighted layer that is no module of the model (a hidden network's F.linear) or other weighted layers
        leave the rerun to decide, as without a trace.
        """
        trace = model.get("computation") or {}
        if not self.reference_layers or trace.get("error") or trace.get("truncated") or not trace.get("layers"):
            return False
        layers = layers_of(model)
        if any(layer["type"] in WEIGHTED and not layer.get("path") for layer in layers):
            return False
        return not compare_layers(layers, self.reference_layers) and bool(compare_computation(layers, self.reference_layers))

    def verified_predictions(self) -> Verdict:
        """The host's verdict on the chosen model's predictions on the hidden images (``harness.checks.verify``).

        Fails the check when there are no predictions, or when the outputs or inputs files are malformed or
        are not the grader's test images; made once per context.
        """
        if self.verdict is None:
            outputs = self.model_outputs()
            if self.hidden_images is None:
                raise RuntimeError(f"no hidden evaluation images for task {self.task_id}'s dataset {self.dataset!r}")
            model = self.require_model()
            inputs_file = (model.get("inputs") or {}).get(self.dataset or "")
            inputs = self.load_tensor(inputs_file) if inputs_file else None
            state = self.load_tensor(model["state_dict"]) if model.get("state_dict") else None
            reference = self.reference_model if self.fixed_architecture else None
            if reference is not None and self._computes_otherwise(model):
                reference = None  # same modules, another computation (an F.relu on the code): not the reference's run
            rebuild = None
            if self.rebuild is not None and state is not None:
                rebuild = functools.partial(self.rebuild, str(model.get("class_name", "")), model.get("constructor"), state)
            self.verdict = verify(outputs, inputs, state, self.hidden_images, reference, model.get("modules"), rebuild)
        return self.verdict
