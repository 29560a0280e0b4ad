"""Rubric loading: a valid rubric loads with every field; every kind of invalid one fails with file, field and reason."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from harness.checks import KnownChecks, known_checks
from harness.errors import RubricError
from harness.rubric import CheckSpec, load_rubric, parse_rubric

VALID = """\
assignment: dl2025-a2
title: "Deep Learning 2025, Assignment 2"
datasets: [mnist]
tasks:
  - id: cnn
    title: "1.3 CNN on MNIST"
    source: CNNMNIST.ipynb
    model: {prefer: [Net, CNNNet], spec: "reference.classifiers:CNN", dataset: mnist}
    budget: {reference_multiple: 5, wall_s: 900, device: cpu}
    checks:
      - {check: architecture_matches, points: 2}
      - {check: parameter_count, equals: 12810, points: 1}
      - {check: feature_width, layer: Flatten, equals: 800, points: 1}
      - {check: test_accuracy, relative_to_reference: 0.98, points: 3}
      - {check: per_class_accuracy, min: 0.9, points: 1}
  - id: cnn-why-800
    title: "Why Flatten, and why 800 features?"
    manual: {points: 2}
"""

CNN_CHECKS = ["architecture_matches", "parameter_count", "feature_width", "test_accuracy", "per_class_accuracy"]
KNOWN_CHECKS = {name: known_checks()[name] for name in CNN_CHECKS}
"""The registered checks VALID uses, with their declarations."""


def write(tmp_path: Path, text: str, name: str = "dl2025-a2.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_rubric_loads_with_every_field(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    rubric = load_rubric(path, known_checks=KNOWN_CHECKS)

    assert rubric.assignment == "dl2025-a2"
    assert rubric.title == "Deep Learning 2025, Assignment 2"
    assert rubric.datasets == ("mnist",)
    assert rubric.path == path
    assert rubric.hash == hashlib.sha256(path.read_bytes()).hexdigest()

    cnn, why = rubric.tasks
    assert (cnn.id, cnn.title, cnn.source) == ("cnn", "1.3 CNN on MNIST", ("CNNMNIST.ipynb",))
    assert cnn.model is not None
    assert cnn.model.prefer == ("Net", "CNNNet")
    assert cnn.model.spec == "reference.classifiers:CNN"
    assert cnn.model.dataset == "mnist"
    from reference.classifiers import CNN

    assert cnn.model.reference_class() is CNN
    assert cnn.budget is not None
    assert (cnn.budget.reference_multiple, cnn.budget.wall_s, cnn.budget.device) == (5, 900, "cpu")
    assert [c.check for c in cnn.checks] == CNN_CHECKS
    assert [c.points for c in cnn.checks] == [2, 1, 1, 3, 1]
    assert cnn.checks[1].equals == 12810 and isinstance(cnn.checks[1].equals, int)
    assert (cnn.checks[2].layer, cnn.checks[2].equals) == ("Flatten", 800)
    assert cnn.checks[3].relative_to_reference == 0.98 and cnn.checks[3].min is None
    assert cnn.checks[4].min == 0.9
    assert cnn.checks[0].params == {} and cnn.checks[0].tolerance is None
    assert not cnn.is_manual and cnn.points == 8

    assert why.is_manual and why.manual is not None and why.manual.points == 2
    assert why.source == () and why.checks == ()

    assert rubric.automatic_tasks == (cnn,)
    assert rubric.manual_tasks == (why,)
    assert rubric.points_total == 10
    assert rubric.task("cnn-why-800") is why
    assert rubric.sources_in_order() == (("CNNMNIST.ipynb",),)


def test_check_params_tolerance_and_lists_of_alternatives(tmp_path: Path) -> None:
    text = """\
assignment: idl-ex2
title: IDL exercise 2
datasets: [fashionmnist, mnist, mnist]
tasks:
  - id: ae
    title: Autoencoder
    source: [ex2.ipynb, Exercise2.ipynb]
    model: {prefer: Autoencoder}
    checks:
      - {check: parameter_count, equals: 1000, tolerance: 10, points: 0.5}
      - {check: reconstruction, max: 0.05, params: {split: hidden, batches: 3}, points: 1.5}
"""
    rubric = load_rubric(write(tmp_path, text))
    task = rubric.tasks[0]
    assert rubric.datasets == ("fashionmnist", "mnist")
    assert task.source == ("ex2.ipynb", "Exercise2.ipynb")
    assert task.model is not None and task.model.prefer == ("Autoencoder",) and task.model.spec is None
    assert task.budget is None
    assert task.checks[0].tolerance == 10
    assert task.checks[1].params == {"split": "hidden", "batches": 3}
    assert task.points == 2.0


def test_rubric_is_immutable(tmp_path: Path) -> None:
    rubric = load_rubric(write(tmp_path, VALID))
    with pytest.raises(Exception):
        rubric.tasks[0].checks[0].points = 5  # type: ignore[misc]


def test_sources_in_order_distinct_in_first_use_order(tmp_path: Path) -> None:
    text = """\
assignment: a
title: t
tasks:
  - {id: ae, title: AE, source: AE.ipynb, checks: [{check: c, points: 1}]}
  - {id: clf, title: Classifier, source: classifier.ipynb, checks: [{check: c, points: 1}]}
  - {id: ae-fig, title: Figure, source: ae.IPYNB, checks: [{check: c, points: 1}]}
  - {id: essay, title: Essay, manual: {points: 1}}
  - {id: transfer, title: Transfer, source: [transfer.py, Transfer.ipynb], checks: [{check: c, points: 1}]}
"""
    rubric = load_rubric(write(tmp_path, text))
    assert rubric.sources_in_order() == (("AE.ipynb",), ("classifier.ipynb",), ("transfer.py", "Transfer.ipynb"))
    assert [t.id for t in rubric.tasks_for_source(("AE.ipynb",))] == ["ae", "ae-fig"]


def test_find_source_matches_case_insensitively_and_prefers_shallow_paths(tmp_path: Path) -> None:
    text = """\
assignment: a
title: t
tasks:
  - {id: cnn, title: CNN, source: [CNNMNIST.ipynb, cnn.py], checks: [{check: c, points: 1}]}
"""
    task = load_rubric(write(tmp_path, text)).tasks[0]
    assert task.find_source(["README.md", "cnnmnist.IPYNB"]) == "cnnmnist.IPYNB"
    assert task.find_source(["deep/er/CNNMNIST.ipynb", "sub/CnnMnist.ipynb"]) == "sub/CnnMnist.ipynb"
    assert task.find_source(["cnn.py", "sub/CNNMNIST.ipynb"]) == "sub/CNNMNIST.ipynb"  # first alternative first
    assert task.find_source(["CNN.PY"]) == "CNN.PY"
    assert task.find_source(["other.ipynb"]) is None


def test_hash_is_of_the_file_bytes(tmp_path: Path) -> None:
    a = load_rubric(write(tmp_path, VALID, "a.yaml"))
    b = load_rubric(write(tmp_path, VALID + "# a comment changes the file\n", "b.yaml"))
    assert a.tasks == b.tasks  # same content...
    assert a.hash != b.hash  # ...but another file: reports graded by one are not reused for the other


def test_rubric_survives_pickling_for_worker_processes(tmp_path: Path) -> None:
    import pickle

    rubric = load_rubric(write(tmp_path, VALID))
    copy_ = pickle.loads(pickle.dumps(rubric))
    assert copy_ == rubric
    assert (copy_.hash, copy_.path) == (rubric.hash, rubric.path)


def test_dataset_names_match_the_data_package() -> None:
    import typing

    from harness.data import DATASETS
    from harness.rubric import Dataset

    assert typing.get_args(Dataset) == DATASETS


Mutation = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting a field given as ``tasks.0.checks.1.points``."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _drop(path: str) -> Mutation:
    """A mutation removing a field given as ``tasks.0.title``."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return mutate


INVALID: list[tuple[str, Mutation, str, str]] = [
    ("unknown key", _set("tasks.0.checks.1.pionts", 1), "tasks[0] (cnn) > checks[1] (parameter_count) > pionts",
     "is not a known field (did you mean 'points'?)"),
    ("unknown top-level key", _set("dataset", ["mnist"]), "dataset", "is not a known field (did you mean 'datasets'?)"),
    ("missing field", _drop("tasks.0.title"), "tasks[0] (cnn) > title", "is required"),
    ("missing assignment", _drop("assignment"), "assignment", "is required"),
    ("blank task title", _set("tasks.0.title", "  "), "tasks[0] (cnn) > title", "must not be empty"),
    ("blank rubric title", _set("title", ""), "title", "must not be empty"),
    ("zero points", _set("tasks.0.checks.2.points", 0), "tasks[0] (cnn) > checks[2] (feature_width) > points", "must be greater than 0, got 0"),
    ("negative points", _set("tasks.1.manual.points", -1), "tasks[1] (cnn-why-800) > manual > points", "must be greater than 0, got -1"),
    ("points not a number", _set("tasks.0.checks.0.points", "two"), "tasks[0] (cnn) > checks[0] (architecture_matches) > points",
     "must be a number, got 'two'"),
    ("min with relative_to_reference", _set("tasks.0.checks.3.min", 0.9), "tasks[0] (cnn) > checks[3] (test_accuracy) > min",
     "min and relative_to_reference cannot be used together"),
    ("relative_to_reference above 2", _set("tasks.0.checks.3.relative_to_reference", 2.5),
     "tasks[0] (cnn) > checks[3] (test_accuracy) > relative_to_reference", "must be at most 2, got 2.5"),
    ("relative_to_reference zero", _set("tasks.0.checks.3.relative_to_reference", 0),
     "tasks[0] (cnn) > checks[3] (test_accuracy) > relative_to_reference", "must be greater than 0, got 0"),
    ("min above max", _set("tasks.0.checks.4.max", 0.5), "tasks[0] (cnn) > checks[4] (per_class_accuracy) > min", "min (0.9) is greater than max (0.5)"),
    ("equals with min", _set("tasks.0.checks.1.min", 1), "tasks[0] (cnn) > checks[1] (parameter_count) > equals",
     "equals cannot be combined with min, max or relative_to_reference"),
    ("equals a mapping", _set("tasks.0.checks.1.equals", {"a": 1}), "tasks[0] (cnn) > checks[1] (parameter_count) > equals",
     "must be a number, text, true/false or a list of those"),
    ("both manual and automatic", _set("tasks.1.source", "notes.ipynb"), "tasks[1] (cnn-why-800) > manual",
     "a task is either manual or automatic, not both: remove manual, or remove source"),
    ("automatic without source", _drop("tasks.0.source"), "tasks[0] (cnn) > source", "is required for an automatic task"),
    ("automatic without checks", _set("tasks.0.checks", []), "tasks[0] (cnn) > checks", "an automatic task needs at least one check"),
    ("duplicate task ids", _set("tasks.1.id", "cnn"), "tasks[1] (cnn) > id", "task id 'cnn' is already used by tasks[0]"),
    ("bad id", _set("tasks.1.id", "Why_800"), "tasks[1] (Why_800) > id", "'Why_800' is not a valid id"),
    ("unimportable module", _set("tasks.0.model.spec", "reference.clasifiers:CNN"), "tasks[0] (cnn) > model > spec",
     "cannot import module 'reference.clasifiers'"),
    ("missing class", _set("tasks.0.model.spec", "reference.classifiers:CNNN"), "tasks[0] (cnn) > model > spec",
     "module 'reference.classifiers' has no class 'CNNN'"),
    ("spec without colon", _set("tasks.0.model.spec", "reference.classifiers.CNN"), "tasks[0] (cnn) > model > spec",
     "is not of the form 'module:Class'"),
    ("unknown dataset", _set("datasets", ["mnist", "emnist"]), "datasets[1]",
     "must be 'mnist', 'fashionmnist' or 'signs', got 'emnist'"),
    ("model dataset not listed", _set("tasks.0.model.dataset", "signs"), "tasks[0] (cnn) > model > dataset",
     "'signs' is not among the rubric's datasets (mnist)"),
    ("bad device", _set("tasks.0.budget.device", "tpu"), "tasks[0] (cnn) > budget > device", "must be 'cpu' or 'gpu', got 'tpu'"),
    ("no tasks", _set("tasks", []), "tasks", "must list at least one task"),
    ("source not text", _set("tasks.0.source", ["a.ipynb", 3]), "tasks[0] (cnn) > source[1]", "must be text, got 3"),
    ("empty model section", _set("tasks.0.model", {}), "tasks[0] (cnn) > model", "give prefer"),
]


@pytest.mark.parametrize(("mutate", "field", "reason"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_rubric_names_file_field_and_reason(tmp_path: Path, mutate: Mutation, field: str, reason: str) -> None:
    data = copy.deepcopy(yaml.safe_load(VALID))
    mutate(data)
    path = write(tmp_path, yaml.safe_dump(data, sort_keys=False), "broken-rubric.yaml")
    with pytest.raises(RubricError) as info:
        load_rubric(path, known_checks=KNOWN_CHECKS)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: "), message
    assert reason in message


def test_unknown_check_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("check: parameter_count", "check: paramter_count"))
    with pytest.raises(RubricError) as info:
        load_rubric(path, known_checks=KNOWN_CHECKS)
    assert str(info.value) == (
        f"{path}: tasks[0] (cnn) > checks[1] (paramter_count) > check: unknown check 'paramter_count' "
        "(did you mean 'parameter_count'?); "
        "known: architecture_matches, feature_width, parameter_count, per_class_accuracy, test_accuracy"
    )
    # Without a list of known checks the name is not judged.
    assert load_rubric(path).tasks[0].checks[1].check == "paramter_count"


@pytest.mark.parametrize(("measures", "reason"), [
    ((), "test_accuracy measures nothing the reference is calibrated on, so there is no reference value to take a "
         "fraction of: give an absolute bound (min) instead"),
    (("hidden_accuracy", "weakest_class"), "test_accuracy measures 2 calibrated values (hidden_accuracy, "
                                           "weakest_class), and a relative bar is a fraction of one: give an absolute "
                                           "bound (min) instead"),
])
def test_a_relative_bar_on_a_check_that_measures_no_single_value_is_refused_at_load(
        tmp_path: Path, measures: tuple[str, ...], reason: str) -> None:
    # a check declared to read relative_to_reference but not what it measures: before, every student's grading
    # failed with "declares 0 calibrated values, not one"
    registered = known_checks()
    checks = KnownChecks({name: registered[name] for name in CNN_CHECKS},
                         {**registered.measures, "test_accuracy": measures})
    path = write(tmp_path, VALID)
    with pytest.raises(RubricError) as info:
        load_rubric(path, known_checks=checks)
    assert str(info.value) == f"{path}: tasks[0] (cnn) > checks[3] (test_accuracy) > relative_to_reference: {reason}"
    # the registered test_accuracy measures the one value its bar is a fraction of
    assert load_rubric(path, known_checks=known_checks()).tasks[0].checks[3].relative_to_reference == 0.98


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    text = VALID.replace("points: 2}\n      - {check: parameter_count", "points: -2}\n      - {check: parameter_count")
    text = text.replace("manual: {points: 2}", "manual: {points: 2, pionts: 2}")
    path = write(tmp_path, text)
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 2 problems:"
    assert lines[1] == "  tasks[0] (cnn) > checks[0] (architecture_matches) > points: must be greater than 0, got -2"
    assert lines[2].startswith("  tasks[1] (cnn-why-800) > manual > pionts: is not a known field")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("assignment: a\ntasks: [\n  {id: x}\n", "line 4, column 1"),
        ("assignment: a\ntitle: t: u\n", "line 2, column 9"),
    ],
)
def test_yaml_syntax_error_names_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text, "syntax.yaml")
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    assert str(info.value).startswith(f"{path}: invalid YAML at {where}: ")


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "- just\n- a list\n", "list.yaml")
    with pytest.raises(RubricError, match=r"list\.yaml: a rubric is a mapping .* got list"):
        load_rubric(path)
    with pytest.raises(RubricError, match=r"nowhere\.yaml: cannot read the rubric"):
        load_rubric(tmp_path / "nowhere.yaml")


def test_parse_rubric_names_the_given_file() -> None:
    with pytest.raises(RubricError, match=r"^inline\.yaml: title: is required$"):
        parse_rubric("assignment: a\ntasks: [{id: e, title: E, manual: {points: 1}}]\n", "inline.yaml")


def test_check_spec_is_what_a_check_reads() -> None:
    spec = CheckSpec(check="feature_width", layer="Flatten", equals=800, points=1)
    assert (spec.check, spec.layer, spec.equals, spec.points, spec.min) == ("feature_width", "Flatten", 800, 1.0, None)


def test_a_model_spec_can_name_constructor_arguments(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "assignment: x\ntitle: X\ntasks:\n  - id: ae\n    title: AE\n    source: a.ipynb\n"
        "    model: {spec: 'reference.autoencoders:FashionConvAE', args: {latent_dim: 3}}\n"
        "    checks: [{check: architecture_matches, points: 1}]\n"
    )
    model = load_rubric(path).tasks[0].model.build_reference()
    assert model.encoder[-1].out_features == 3


def test_constructor_arguments_the_reference_does_not_take_are_refused(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "assignment: x\ntitle: X\ntasks:\n  - id: ae\n    title: AE\n    source: a.ipynb\n"
        "    model: {spec: 'reference.autoencoders:FashionConvAE', args: {latnet_dim: 3}}\n"
        "    checks: [{check: architecture_matches, points: 1}]\n"
    )
    with pytest.raises(RubricError) as caught:
        load_rubric(path)
    assert "tasks[0] (ae) > model > args: reference.autoencoders:FashionConvAE cannot be built with {'latnet_dim': 3}" in str(caught.value)


class Stack(torch.nn.Sequential):
    """``depth`` Linear layers: a number that is not a size, but the network's structure."""

    def __init__(self, depth: int = 2) -> None:
        super().__init__(*(torch.nn.Linear(4, 4) for _ in range(depth)))


def _free(model: str) -> str:
    return ("assignment: x\ntitle: X\ntasks:\n  - id: ae\n    title: AE\n    source: a.ipynb\n"
            f"    model: {model}\n    checks: [{{check: architecture_matches, points: 1}}]\n")


def test_a_model_spec_names_the_sizes_the_assignment_leaves_free() -> None:
    model = parse_rubric(_free("{spec: 'reference.autoencoders:Autoencoder', free: [dim2]}"), "r.yaml").tasks[0].model
    assert model.free == ("dim2",) and model.free_sizes() == {"dim2": 128}
    assert parse_rubric(_free("{spec: 'reference.autoencoders:Autoencoder', free: [dim2], args: {dim2: 512}}"),
                        "r.yaml").tasks[0].model.free_sizes() == {"dim2": 512}


@pytest.mark.parametrize(("model", "reason"), [
    ("{spec: 'reference.autoencoders:Autoencoder', free: [dim9]}",
     "free: dim9 is not a whole-number argument of reference.autoencoders:Autoencoder (arguments: dim1, dim2, dim3)"),
    ("{prefer: [model], free: [dim2]}", "free: free sizes need a spec (the reference class whose arguments they name)"),
])
def test_a_free_size_that_is_not_a_size_is_refused(model: str, reason: str) -> None:
    with pytest.raises(RubricError) as caught:
        parse_rubric(_free(model), "r.yaml")
    assert f"tasks[0] (ae) > model > {reason}" in str(caught.value)


def test_a_free_size_that_changes_the_layers_is_refused_where_the_reference_is_described() -> None:
    # building the reference needs torch, which loading a rubric does not import: the rubric loads, and the first
    # description of the reference (a grading setup's, a bundle's) names the file, the field and the reason
    model = parse_rubric(_free("{spec: 'tests.test_rubric:Stack', free: [depth]}"), "r.yaml").tasks[0].model
    with pytest.raises(RubricError) as caught:
        model.reference_layers([[1, 4]], "r.yaml: tasks (ae)")
    assert str(caught.value) == ("r.yaml: tasks (ae) > model > free: changing depth changes the network's layers, "
                                 "not only their sizes")


def test_a_restricted_rubric_keeps_the_tasks_asked_for_under_a_hash_of_its_own() -> None:
    rubric = load_rubric(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "rubrics" / "dl2025-a2-part1.yaml")
    part = rubric.restricted(["cnn"])
    assert [t.id for t in part.tasks] == ["cnn"]
    assert part.hash != rubric.hash and part.hash == rubric.restricted(["cnn"]).hash
    assert [t.id for t in rubric.tasks][:2] == ["ff", "ff-description"]  # the original is unchanged
    with pytest.raises(RubricError, match="no task nope in rubric dl2025-a2-part1"):
        rubric.restricted(["nope"])


def test_titles_are_kept_without_the_spaces_around_them() -> None:
    rubric = parse_rubric("assignment: a\ntitle: '  A2  '\ntasks: [{id: e, title: ' Essay ', manual: {points: 1}}]\n", "inline.yaml")
    assert (rubric.title, rubric.tasks[0].title) == ("A2", "Essay")


def test_points_on_unverified_predictions_are_held_unless_a_rubric_says_believe() -> None:
    """Held by default, by every rubric: idl-ex2's networks built from other networks (Classifier(encoder)) are
    rebuilt inner module first, so its honest students' predictions are verified, not held."""
    root = Path(__file__).resolve().parents[1] / "rubrics"
    policies = {path.stem: load_rubric(path, known_checks=known_checks()).unverified for path in sorted(root.glob("*.yaml"))}
    assert policies == {"adl2024-a2": "hold", "dl2025-a2": "hold", "idl-ex2": "hold", "mle-sheet06": "hold"}
    for assignment in ("adl2024-a2", "dl2025-a2"):  # their VAE samples its code when evaluated: no run reproduces it
        rubric = load_rubric(root / f"{assignment}.yaml", known_checks=known_checks())
        assert {t.id: t.unverified for t in rubric.automatic_tasks if t.unverified} == {"vae": "believe"}
    with pytest.raises(RubricError, match="unverified: must be 'hold' or 'believe', got 'sometimes'"):
        parse_rubric("assignment: a\ntitle: A\nunverified: sometimes\ntasks: [{id: w, title: W, manual: {points: 1}}]\n",
                     "a.yaml")


def test_runs_are_seeded_with_0_unless_a_rubric_gives_a_seed_or_null() -> None:
    text = "assignment: a\ntitle: A\n{seed}tasks: [{{id: w, title: W, manual: {{points: 1}}}}]\n"
    assert parse_rubric(text.format(seed=""), "a.yaml").seed == 0
    assert parse_rubric(text.format(seed="seed: 42\n"), "a.yaml").seed == 42
    assert parse_rubric(text.format(seed="seed: null\n"), "a.yaml").seed is None
    for bad, reason in (("-1", "must be at least 0, got -1"), ("'7'", "must be a whole number, got '7'"),
                        ("1.5", "must be a whole number, got 1.5"), (str(2**32), "must be less than 4,294,967,296")):
        with pytest.raises(RubricError) as info:
            parse_rubric(text.format(seed=f"seed: {bad}\n"), "a.yaml")
        assert str(info.value).startswith("a.yaml: seed: ") and reason in str(info.value), str(info.value)
