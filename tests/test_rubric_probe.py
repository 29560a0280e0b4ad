"""A task's probe block (values, calls), its merge into the runner settings, task references and free
architectures (what calibration keeps of the reference's checks: tests/test_calibrate_rubric.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.checks import known_checks
from harness.checks.select import select_model
from harness.errors import RubricError
from harness.pipeline import GradingSetup, _run_settings
from harness.rubric import parse_rubric

RUBRIC = """\
assignment: dl2025-a2
title: "Deep Learning 2025, Assignment 2"
datasets: [mnist]
tasks:
  - id: vae-loss
    title: "2.5 VAE loss"
    source: vae.ipynb
    probe:
      calls:
        - {id: vae_loss, names: [loss_function, vae_loss, loss_fn], inputs: vae_loss}
    checks:
      - {check: vae_loss_closed_form, params: {call: vae_loss}, points: 1}
  - id: vae-samples
    title: "2.6 Sampling the prior"
    source: VAE.ipynb
    model: {prefer: [model, vae], dataset: mnist, architecture: free}
    probe:
      values: [z, z_samples]
      calls:
        - {id: vae_loss, names: [loss_function, vae_loss, loss_fn], inputs: vae_loss}
    checks:
      - {check: standard_normal_samples, params: {values: [z, z_samples]}, points: 1}
      - {check: reconstruction_error, max: 0.05, points: 1}
      - {check: bottleneck_width, params: {same_as_task: vae-loss}, points: 1}
  - id: ae
    title: "Autoencoder"
    source: autoencoders.ipynb
    probe: {values: z}
    checks:
      - {check: reconstruction_compare, params: {task: vae-samples, relation: worse}, points: 1}
"""


def load(text: str = RUBRIC):
    return parse_rubric(text, "rubric.yaml", known_checks())


def test_probe_blocks_load_and_merge_per_source() -> None:
    rubric = load()
    loss, samples, ae = rubric.tasks
    assert loss.probe is not None and loss.probe.values == ()
    assert loss.probe.calls[0].as_config() == {
        "id": "vae_loss", "names": ["loss_function", "vae_loss", "loss_fn"], "inputs": "vae_loss"
    }
    assert ae.probe is not None and ae.probe.values == ("z",)  # a single name is a list of one
    assert samples.model is not None and samples.model.architecture == "free"
    vae_source = rubric.sources_in_order()[0]
    values, calls = rubric.probe_requests(vae_source)
    assert values == ("z", "z_samples") and [c.id for c in calls] == ["vae_loss"]  # the repeated call once
    assert [t.id for t in rubric.grading_order()] == ["vae-loss", "vae-samples", "ae"]


def test_the_runner_settings_carry_the_merged_probe_requests(tmp_path: Path) -> None:
    rubric = load()
    setup = GradingSetup(rubric=rubric, data_dir=tmp_path, out_dir=tmp_path, sandbox=None)
    settings = _run_settings(setup, rubric.tasks_for_source(rubric.sources_in_order()[0]))
    assert settings.task_values == ("z", "z_samples")
    assert settings.calls == ({"id": "vae_loss", "names": ["loss_function", "vae_loss", "loss_fn"], "inputs": "vae_loss"},)
    assert settings.prefer == ("model", "vae")
    assert settings.seed == rubric.seed == 0  # the rubric gives none: runs start from seed 0
    other = _run_settings(setup, rubric.tasks_for_source(rubric.sources_in_order()[1]))
    assert (other.task_values, other.calls) == (("z",), ())


def _replace(old: str, new: str) -> str:
    assert old in RUBRIC
    return RUBRIC.replace(old, new, 1)


@pytest.mark.parametrize(("text", "message"), [
    (_replace("inputs: vae_loss}", "inputs: images}"),
     "rubric.yaml: tasks[0] (vae-loss) > probe > calls[0] (vae_loss) > inputs: no fixed inputs 'images'; known: vae_loss"),
    (_replace("names: [loss_function, vae_loss, loss_fn]", "names: [loss-function]"),
     "rubric.yaml: tasks[0] (vae-loss) > probe > calls[0] (vae_loss) > names: 'loss-function' is not a Python name (letters, digits and "
     "underscores, not starting with a digit)"),
    (_replace("    probe:\n      calls:\n        - {id: vae_loss, names: [loss_function, vae_loss, loss_fn], inputs: vae_loss}\n",
              "    probe:\n      calls:\n        - {id: vae_loss, names: [loss_function], inputs: vae_loss}\n"
              "        - {id: vae_loss, names: [vae_loss], inputs: vae_loss}\n"),
     "rubric.yaml: tasks[0] (vae-loss) > probe > calls[1] (vae_loss) > id: call id 'vae_loss' is already used by calls[0]"),
    (_replace("probe: {values: z}", "probe: {}"),
     "rubric.yaml: tasks[2] (ae) > probe: give values (names to record), calls (functions to call), or both"),
    (_replace("names: [loss_function, vae_loss, loss_fn], inputs: vae_loss}\n    checks",
              "names: [loss_function], inputs: vae_loss}\n    checks"),
     "rubric.yaml: tasks[1] (vae-samples) > probe > calls[0] (vae_loss): call 'vae_loss' is defined differently by task 'vae-loss', which runs "
     "the same source: use another id or the same definition"),
    (_replace("params: {call: vae_loss}", "params: {call: loss}"),
     "rubric.yaml: tasks[0] (vae-loss) > checks[0] (vae_loss_closed_form) > params > call: call 'loss' is not among the probe calls of this source (vae_loss): "
     "add it to probe.calls"),
    (_replace("params: {values: [z, z_samples]}", "params: {values: [latent]}"),
     "rubric.yaml: tasks[1] (vae-samples) > checks[0] (standard_normal_samples) > params > values: latent not recorded: add to probe.values"),
    (_replace("params: {same_as_task: vae-loss}", "params: {same_as_task: vea-loss}"),
     "rubric.yaml: tasks[1] (vae-samples) > checks[2] (bottleneck_width) > params > same_as_task: 'vea-loss' is not an automatic task of this rubric; "
     "tasks: vae-loss, vae-samples, ae"),
    (_replace("params: {same_as_task: vae-loss}", "params: {same_as_task: ae}"),
     "rubric.yaml: tasks[1] (vae-samples) > checks[2] (bottleneck_width) > params > same_as_task: task 'ae' is graded after 'vae-samples': list it "
     "(and its source) first"),
    (_replace("params: {task: vae-samples, relation: worse}", "params: {relation: worse}"),
     "rubric.yaml: tasks[2] (ae) > checks[0] (reconstruction_compare) > params > task: required: the task whose model "
     "this task's model is compared with (graded earlier)"),
    (_replace("architecture: free", "architecture: loose"),
     "rubric.yaml: tasks[1] (vae-samples) > model > architecture: must be 'fixed' or 'free', got 'loose'"),
])
def test_invalid_probe_blocks_and_task_references(text: str, message: str) -> None:
    with pytest.raises(RubricError) as error:
        load(text)
    assert str(error.value) == message


def test_a_manual_task_has_no_probe() -> None:
    text = RUBRIC + '  - id: essay\n    title: "Written"\n    manual: {points: 2}\n    probe: {values: [z]}\n'
    with pytest.raises(RubricError, match=r"tasks\[3\] \(essay\) > manual: a task is either manual or automatic, not both: "
                                          r"remove manual, or remove probe"):
        load(text)


def test_free_architectures_rank_by_the_reference_but_never_rule_out() -> None:
    layers = [{"path": "0", "type": "Conv2d", "hyper": {"in_channels": 1, "out_channels": 16, "kernel_size": [3, 3]}}]
    designs = [
        {"id": "m0", "name": "mlp", "origin": "instance", "class_name": "MLP",
         "modules": [{"path": "0", "type": "Linear", "hyper": {"in_features": 784, "out_features": 10}}]},
        {"id": "m1", "name": "net", "origin": "instance", "class_name": "Net",
         "modules": [{"path": "0", "type": "Linear", "hyper": {"in_features": 784, "out_features": 64}},
                     {"path": "1", "type": "Linear", "hyper": {"in_features": 64, "out_features": 10}}]},
    ]
    model, note = select_model(designs, (), layers, None)
    assert model is None and note == "none of the models found looks like the assignment's network"
    model, note = select_model(designs, (), layers, None, require_similarity=False)
    assert model is not None and note.endswith("the one of 2 instances most like the reference network")
    model, note = select_model(designs, ("net",), None, None, require_similarity=False)
    assert (model["id"], note) == ("m1", "graded `net` (an instance of Net)")
    model, _ = select_model(designs, (), None, None)  # no spec at all: the first trained instance
    assert model["id"] == "m0"
