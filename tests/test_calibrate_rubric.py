"""Calibrating a rubric for grading (``harness.calibration.calibrate_rubric``): what is kept of the reference's
checks (what each check declares it measures) and the one table of profiles. Calibrating only the tasks a batch
needs: tests/test_calibrate_batch.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import harness.pipeline
from harness.calibrate import PROFILES as TRAINING_PROFILES
from harness.calibration import reference_metrics
from harness.checks import declared_measures, known_checks, reference_value
from harness.models import CheckResult
from harness.pipeline import GradingSetup
from harness.profiles import PROFILES, TEMPLATE_EPOCHS
from harness.rubric import parse_rubric
from harness.scoring import score_submission

DECLARING = """\
assignment: declaring
title: "What calibration keeps"
datasets: [mnist]
tasks:
  - id: cnn
    title: "CNN"
    source: cnn.ipynb
    model: {prefer: [model], dataset: mnist}
    checks:
      - {check: test_accuracy, relative_to_reference: 0.9, points: 1}
      - {check: test_accuracy, min: 0.5, points: 1}
      - {check: per_class_accuracy, relative_to_reference: 0.9, points: 1}
      - {check: parameter_count, equals: 12810, points: 1}
  - id: ae
    title: "Autoencoder"
    source: ae.ipynb
    model: {prefer: [model], dataset: mnist, architecture: free}
    checks:
      - {check: reconstruction_error, params: {max_ratio: 1.5}, points: 1}
      - {check: bottleneck_width, equals: 2, points: 1}
"""


def test_the_profiles_are_one_table_for_grading_and_training() -> None:
    from reference.training import DL2025_TEMPLATE

    assert TRAINING_PROFILES is PROFILES and harness.pipeline.PROFILES is PROFILES
    assert TEMPLATE_EPOCHS == DL2025_TEMPLATE.epochs  # the profile's copy of the course template's epochs
    assert (PROFILES["fast"].eval_images, PROFILES["fast"].default_wall_s) == (1000, 300.0)
    assert (PROFILES["full"].eval_images, PROFILES["full"].default_wall_s) == (None, 900.0)


def test_checks_declare_what_they_measure() -> None:
    assert declared_measures("test_accuracy") == {"hidden_accuracy": "measured"}
    assert declared_measures("per_class_accuracy") == {"hidden_min_class_accuracy": "weakest_class"}
    assert declared_measures("reconstruction_error") == {"reconstruction_error": "measured"}
    assert declared_measures("parameter_count") == {}  # a figure no relative bar reads is not calibrated


def test_calibration_keeps_only_what_the_checks_declare(tmp_path: Path) -> None:
    rubric = parse_rubric(DECLARING, "rubric.yaml", known_checks())
    results = [
        CheckResult("cnn", "test_accuracy", "error", "no calibrated reference value", 1, 0, {"measured": 0.91, "images": 1000}),
        CheckResult("cnn", "test_accuracy", "passed", "", 1, 1, {"measured": 0.42}),  # the first of a task is kept
        CheckResult("cnn", "per_class_accuracy", "error", "", 1, 0, {"per_class": {"0": 0.95, "1": 0.88}, "weakest_class": 0.88}),
        CheckResult("cnn", "parameter_count", "passed", "", 1, 1, {"measured": 12810, "expected": 12810}),
        CheckResult("ae", "reconstruction_error", "error", "", 1, 0, {"measured": 0.031}),
        CheckResult("ae", "bottleneck_width", "failed", "", 1, 0, {"measured": 2}),
    ]
    report = score_submission(rubric, "reference", "hash", results, {})
    setup = GradingSetup(rubric=rubric, data_dir=tmp_path, out_dir=tmp_path, sandbox=None)
    assert reference_metrics(setup, report) == {
        "cnn": {"hidden_accuracy": 0.91, "hidden_min_class_accuracy": 0.88},
        "ae": {"reconstruction_error": 0.031},
    }
    nan = [CheckResult("ae", "reconstruction_error", "error", "", 1, 0, {"measured": float("nan")})]
    assert reference_metrics(setup, score_submission(rubric, "reference", "hash", nan, {})) == {"cnn": {}, "ae": {}}


def test_a_relative_bar_reads_the_declared_value_and_says_how_to_calibrate_it() -> None:
    spec = SimpleNamespace(check="per_class_accuracy")
    calibrated = SimpleNamespace(task_id="cnn", reference_metrics={"hidden_min_class_accuracy": 0.88, "hidden_accuracy": 0.9})
    assert reference_value(calibrated, spec) == 0.88
    with pytest.raises(RuntimeError) as raised:
        reference_value(SimpleNamespace(task_id="cnn", reference_metrics={"seconds": 3.0}), spec)
    assert str(raised.value) == (
        "no calibrated reference value 'hidden_min_class_accuracy' for task cnn: grade with the reference submission "
        "(--reference DIR, or submissions/<assignment>/reference) to calibrate relative bars"
    )


def test_each_task_is_cached_under_a_key_of_its_own(tmp_path: Path) -> None:
    import nbformat

    from harness.calibration import _task_keys
    from harness.matching import plan_sources

    notebook = nbformat.writes(nbformat.v4.new_notebook())

    def keys(text: str = DECLARING, profile: str = "fast", reference: str = "abc") -> dict[str, str]:
        rubric = parse_rubric(text, "rubric.yaml", known_checks())
        setup = GradingSetup(rubric=rubric, data_dir=tmp_path, out_dir=tmp_path, sandbox=None, profile=profile)
        plan = plan_sources(rubric, {"cnn.ipynb": notebook, "ae.ipynb": notebook})
        return _task_keys(setup, SimpleNamespace(content_hash=reference), plan, ["cnn", "ae"])

    base = keys()
    edited = keys(DECLARING.replace("min: 0.5", "min: 0.6"))  # a bar of cnn: ae's calibration still holds
    assert edited["cnn"] != base["cnn"] and edited["ae"] == base["ae"]
    assert keys(DECLARING.replace('title: "What calibration keeps"', 'title: "Renamed"')) == base
    for changed in (keys(profile="full"), keys(reference="def"), keys(DECLARING.replace("[mnist]", "[mnist, fashionmnist]"))):
        assert changed["cnn"] != base["cnn"] and changed["ae"] != base["ae"]
    (tmp_path / "manifest.json").write_text("{}", encoding="utf-8")  # other prepared data
    assert set(keys().values()).isdisjoint(base.values())
