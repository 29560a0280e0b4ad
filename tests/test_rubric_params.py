"""A check declares the keys of its rubric entry; the rubric loader validates every entry against that declaration.

A rubric mistake (a missing threshold, a count written as text, a misspelt params key) fails when the rubric
loads, with file, field and reason, instead of making the check error in every student's report mid-batch.
"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from harness.checks import get_check, known_checks
from harness.errors import HarnessError, RubricError
from harness.rubric import CheckParams, load_rubric, parse_rubric, references

ROOT = Path(__file__).resolve().parents[1]

RUBRIC = """\
assignment: x
title: X
datasets: [mnist]
tasks:
  - id: autoencoder
    title: Autoencoder
    source: ae.ipynb
    checks:
      - {check: reconstruction_error, max: 0.05, points: 1}
  - id: cnn
    title: CNN
    source: cnn.ipynb
    probe: {values: [z]}
    checks:
      - {check: architecture_matches, points: 1}
      - %s
"""
"""A rubric whose task ``cnn`` ends with the check entry under test (``checks[1]``)."""

WHERE = "rubrics/x.yaml: tasks[1] (cnn) > checks[1]"


def load(entry: str):
    return parse_rubric(RUBRIC % entry, "rubrics/x.yaml", known_checks())


RUBRICS = sorted((ROOT / "rubrics").glob("*.yaml")) + sorted((ROOT / "tests" / "fixtures" / "rubrics").glob("*.yaml"))


@pytest.mark.parametrize("path", RUBRICS, ids=lambda p: p.name)
def test_every_packaged_rubric_fits_its_checks_declarations(path: Path) -> None:
    rubric = load_rubric(path, known_checks=known_checks())
    assert rubric.automatic_tasks


GOOD = [
    "{check: parameter_count, equals: 12810, points: 1}",
    "{check: feature_width, layer: Flatten, equals: 800, points: 1}",
    "{check: feature_width, equals: 800, points: 1}",
    "{check: test_accuracy, min: 0.97, points: 1}",
    "{check: test_accuracy, relative_to_reference: 1, points: 1}",
    "{check: per_class_accuracy, relative_to_reference: 0.9, points: 1}",
    "{check: output_kind, equals: logits, points: 1}",
    "{check: loss_choice, points: 1}",
    "{check: figures_present, points: 1}",
    "{check: figures_present, params: {count: 2}, points: 1}",
    "{check: figure_kind, params: {kind: scatter3d, count: 2, title: 'latent|pca'}, points: 1}",
    "{check: curves_fall, points: 1}",
    "{check: defines, params: {names: plot_generated_samples}, points: 1}",
    "{check: bottleneck_width, min: 8, max: 16, points: 1}",
    "{check: bottleneck_width, params: {same_as_task: autoencoder}, points: 1}",
    "{check: reconstruction_compare, params: {task: autoencoder, relation: better, metric: l1}, points: 1}",
    "{check: shared_weights, params: {task: autoencoder, mode: initialised, max_change: 0.5}, points: 1}",
    "{check: standard_normal_samples, params: {values: z}, points: 1}",
    "{check: output_shape, params: {shape: [1, 28, 28]}, points: 1}",
    "{check: loss_used, equals: HuberLoss, points: 1}",
    "{check: pca_encoding, params: {formula: adl2024, dataset: fashionmnist}, points: 1}",
]


@pytest.mark.parametrize("entry", GOOD)
def test_entries_that_fit_their_declaration_load_as_written(entry: str) -> None:
    import yaml

    spec = load(entry).task("cnn").checks[1]
    written = yaml.safe_load(entry)
    assert spec.params == written.get("params", {})  # the checks read the entry as the author wrote it


BAD = [
    ("required common key", "{check: parameter_count, points: 1}",
     "(parameter_count) > equals: required: the number of trainable parameters the network must have"),
    ("integer written as text", "{check: parameter_count, equals: '12,810', points: 1}",
     "(parameter_count) > equals: expected an integer, got '12,810'"),
    ("integer written as a float", "{check: feature_width, equals: 800.5, points: 1}",
     "(feature_width) > equals: expected an integer, got 800.5"),
    ("common key the check does not read", "{check: parameter_count, equals: 12810, layer: Flatten, points: 1}",
     "(parameter_count) > layer: parameter_count does not read layer; it reads: equals"),
    ("no bar at all", "{check: test_accuracy, points: 3}",
     "(test_accuracy): give the bar to reach: min (an accuracy such as 0.97) or relative_to_reference (such as 0.98)"),
    ("accuracy in percent", "{check: test_accuracy, min: 97, points: 3}",
     "(test_accuracy) > min: must be at most 1, got 97"),
    ("relative bar above the reference", "{check: per_class_accuracy, relative_to_reference: 1.5, points: 1}",
     "(per_class_accuracy) > relative_to_reference: must be at most 1, got 1.5"),
    ("value outside a choice", "{check: output_kind, equals: log_softmax, points: 1}",
     "(output_kind) > equals: expected 'log_probabilities', 'probabilities' or 'logits', got 'log_softmax'"),
    ("value outside a choice in a list", "{check: output_kind, equals: [logits, log_softmax], points: 1}",
     "(output_kind) > equals: expected 'log_probabilities', 'probabilities' or 'logits', got 'log_softmax'"),
    ("accepted network that does not import",
     "{check: architecture_matches, params: {also: reference.classifiers:Logits}, points: 1}",
     "(architecture_matches) > params > also: module 'reference.classifiers' has no class 'Logits'; it defines: "
     "CNN, FeedForward, FeedForwardLogits, ModelSpec, SignsCNN"),
    ("misspelt params key", "{check: figure_kind, params: {kind: scatter, cuont: 2}, points: 1}",
     "(figure_kind) > params > cuont: figure_kind has no params key 'cuont' (did you mean 'count'?); "
     "its params: kind, count, title, exclude_title"),
    ("wrong type in params", "{check: curves_fall, params: {count: two}, points: 1}",
     "(curves_fall) > params > count: expected an integer, got 'two'"),
    ("missing required param", "{check: figure_kind, params: {count: 2}, points: 1}",
     "(figure_kind) > params > kind: required: what the figure must show: scatter, scatter3d, images or lines"),
    ("missing params block", "{check: pca_encoding, points: 1}",
     "(pca_encoding) > params > formula: required: the assignment's encoding: dl2025 (alpha_i = (x - mu) . "
     "sqrt(lambda_i) v_i) or adl2024 (alpha_i = (x - mu) . v_i)"),
    ("params for a check without any", "{check: within_budget, params: {factor: 5}, points: 1}",
     "(within_budget) > params: within_budget takes no params"),
    ("pattern that does not compile", "{check: figure_kind, params: {kind: lines, title: 'loss ('}, points: 1}",
     "(figure_kind) > params > title: 'loss (' is not a valid regular expression: missing ), unterminated subpattern at "
     "position 5"),
    ("loss class typo", "{check: loss_used, equals: L1loss, points: 1}",
     "(loss_used) > equals: 'L1loss' is not a torch.nn loss class (did you mean 'L1Loss'?); e.g. L1Loss, MSELoss, "
     "BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss, SmoothL1Loss, HuberLoss"),
    ("two ways to give one bound", "{check: bottleneck_width, max: 16, params: {same_as_task: autoencoder}, points: 1}",
     "(bottleneck_width): give the latent size by equals, min and/or max, or by params.same_as_task: one of the two"),
    ("no reconstruction bar", "{check: reconstruction_error, params: {metric: l1}, points: 1}",
     "(reconstruction_error): give the bar: max (an error per pixel) or params.max_ratio (a multiple of the reference's)"),
    ("required task reference", "{check: shared_weights, params: {mode: frozen}, points: 1}",
     "(shared_weights) > params > task: required: the earlier task whose model's weights this task's model continues"),
    ("a task compared with itself", "{check: reconstruction_compare, params: {task: cnn, relation: worse}, points: 1}",
     "(reconstruction_compare) > params > task: names its own task 'cnn': name a task graded before it"),
    ("figure count of zero", "{check: figures_present, min: 0, points: 1}",
     "(figures_present) > min: must be at least 1, got 0"),
]


@pytest.mark.parametrize(("entry", "message"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_an_entry_that_does_not_fit_fails_at_load_with_field_and_reason(entry: str, message: str) -> None:
    with pytest.raises(RubricError) as error:
        load(entry)
    assert str(error.value) == f"{WHERE} {message}"


def test_every_problem_of_an_entry_is_reported_together() -> None:
    with pytest.raises(RubricError) as error:
        load("{check: figure_kind, params: {kind: bar, count: two}, points: 1}")
    assert str(error.value).splitlines() == [
        "rubrics/x.yaml: 2 problems:",
        "  tasks[1] (cnn) > checks[1] (figure_kind) > params > kind: expected 'scatter', 'scatter3d', 'images' or "
        "'lines', got 'bar'",
        "  tasks[1] (cnn) > checks[1] (figure_kind) > params > count: expected an integer, got 'two'",
    ]


def test_without_the_registered_checks_parameters_are_not_judged() -> None:
    rubric = parse_rubric(RUBRIC % "{check: parameter_count, equals: '12,810', points: 1}", "rubrics/x.yaml")
    assert rubric.task("cnn").checks[1].equals == "12,810"


def test_what_names_another_task_is_declared_by_the_check() -> None:
    declared = known_checks()
    named = {name: references(declaration) for name, declaration in declared.items() if references(declaration)}
    assert named == {
        "bottleneck_width": [("same_as_task", "task")],
        "reconstruction_compare": [("task", "task")],
        "shared_weights": [("task", "task")],
        "standard_normal_samples": [("values", "probe_value")],
        "vae_loss_closed_form": [("call", "probe_call")],
    }


def _fields(model: type[BaseModel]) -> list[tuple[str, typing.Any]]:
    """Every field of a declaration and of its params block, as (dotted name, FieldInfo)."""
    found = []
    for name, info in model.model_fields.items():
        found.append((name, info))
        if name == "params":
            found += [(f"params.{inner}", sub) for inner, sub in info.annotation.model_fields.items()]
    return found


@pytest.mark.parametrize("name", list(known_checks()))
def test_every_check_documents_each_key_it_declares(name: str) -> None:
    declaration = known_checks()[name]
    assert issubclass(declaration, CheckParams)
    assert get_check(name).__doc__
    undocumented = [field for field, info in _fields(declaration) if not info.description]
    assert not undocumented, f"{name}: no docstring for {', '.join(undocumented)}"


def test_a_registry_miss_names_what_exists() -> None:
    with pytest.raises(HarnessError) as error:
        get_check("paramter_count")
    assert str(error.value).startswith("no check 'paramter_count'; known: architecture_matches, bottleneck_width, ")


def test_a_number_yaml_reads_as_text_is_explained() -> None:
    with pytest.raises(RubricError) as error:
        load("{check: vae_loss_closed_form, params: {call: vae_loss, tolerance: 1e-3}, points: 1}")
    assert str(error.value) == (
        f"{WHERE} (vae_loss_closed_form) > params > tolerance: expected a number, got the text '1e-3': "
        "write it with a dot, e.g. 1.0e-3"
    )


def test_a_check_reads_its_params_with_the_declared_defaults() -> None:
    from harness.checks import options
    from harness.checks.figures import CurvesFallOptions
    from tests.checks.conftest import Spec

    given = options(Spec("curves_fall", params={"count": 3}), CurvesFallOptions)
    assert (given.count, given.min_points, given.min_falling_steps, given.title) == (3, 5, 0.5, None)


def test_an_entry_that_skipped_validation_is_a_harness_error_not_the_students_failure() -> None:
    from harness.checks import run_check
    from harness.checks.context import CheckContext
    from tests.checks.conftest import Spec

    result = run_check(CheckContext("fig"), Spec("figure_kind", params={"kind": "bar"}))
    assert (result.status, result.score) == ("error", 0.0)
    assert result.message == (
        "RuntimeError: the params of check figure_kind do not fit its declaration: "
        "params.kind: Input should be 'scatter', 'scatter3d', 'images' or 'lines'"
    )
