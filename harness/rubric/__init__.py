"""Load and validate a rubric: one declarative YAML file per assignment.

A rubric lists the tasks of an assignment. An automatic task names the file of
the submission that produces it (``source``), how to find its model, its timing
budget and the checks that score it; a manual task is worth points a TA awards
(merged from a CSV, see :mod:`harness.manual`)::

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
          - {check: parameter_count, equals: 12810, points: 1}
          - {check: test_accuracy, relative_to_reference: 0.98, points: 3}
      - id: vae
        title: "2.5 VAE loss"
        source: vae.ipynb
        probe:                            # what the probe records besides the models (optional)
          values: [z]                     # namespace values, by name
          calls:                          # functions called on fixed inputs after the run
            - {id: vae_loss, names: [loss_function, vae_loss], inputs: vae_loss}
        checks:
          - {check: vae_loss_closed_form, params: {call: vae_loss}, points: 1}
      - id: cnn-why-800
        title: "Why Flatten, and why 800 features?"
        manual: {points: 2}
    limits: {memory: 8GiB, cell_timeout_s: 600}  # optional: sandbox limits other than the defaults
    late_penalty: {percent: 10}           # optional: a hand-in the LMS marked late loses 10% of its points
    unverified: hold                      # optional: points resting on predictions the grader could not verify
                                          # wait for a TA's review (hold, the default) or count as they are (believe)

Unknown keys are errors, so a typo never silently drops a check. Every problem
raises :class:`~harness.errors.RubricError` naming the file, the field
(``tasks[2] (cnn) > checks[1] (parameter_count) > equals``) and the reason.

A check declares the keys of its entry that it reads: a :class:`CheckParams` model registered
with it (``@check("parameter_count", params=ParameterCountParams)`` in :mod:`harness.checks`).
Given the registered checks, the loader validates every check entry against its check's
declaration, so a missing, misspelt or mistyped parameter fails here rather than in every
student's report.

Loading imports the module of every ``model.spec`` (a class of the
``reference`` package, normally): a rubric is trusted course-staff input, never
a student's.

The package's modules: ``schema`` (the sections and their rules, model-spec validation included), ``params``
(what a check declares), ``messages`` (validation errors in words); this module reads the YAML.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import RubricError
from harness.rubric.messages import _error_lines, did_you_mean
from harness.rubric.params import (
    CheckParams,
    Count,
    DeclaredKey,
    Fraction,
    Names,
    NoParams,
    PositiveNumber,
    ProbeCallId,
    ProbeValueNames,
    PythonNames,
    Regex,
    TaskId,
    declared_keys,
    references,
)
from harness.rubric.schema import (
    Alternatives,
    Budget,
    CheckSpec,
    Dataset,
    Device,
    LatePenalty,
    Manual,
    ModelRef,
    Probe,
    ProbeCall,
    Rubric,
    RunLimits,
    Task,
    Text,
    Title,
    resolves_specs,
    spec_signature,
    _resolve_spec,  # harness.checks.architecture reads module:Class specs the way the rubric does
)

__all__ = [
    "resolves_specs",
    "spec_signature",
    "Alternatives",
    "Budget",
    "CheckParams",
    "CheckSpec",
    "Count",
    "Dataset",
    "DeclaredKey",
    "Device",
    "Fraction",
    "LatePenalty",
    "Manual",
    "ModelRef",
    "Names",
    "NoParams",
    "PositiveNumber",
    "Probe",
    "ProbeCall",
    "ProbeCallId",
    "ProbeValueNames",
    "PythonNames",
    "Regex",
    "Rubric",
    "RunLimits",
    "Task",
    "TaskId",
    "Text",
    "Title",
    "declared_keys",
    "did_you_mean",
    "load_rubric",
    "parse_rubric",
    "references",
]


def parse_rubric(
    text: bytes | str, name: str, known_checks: Mapping[str, type[BaseModel]] | None = None, *, resolve_specs: bool = True
) -> Rubric:
    """Validate rubric YAML text; ``name`` (the file) appears in every error message.

    ``known_checks``: the registered checks by name, each with its declaration (:class:`CheckParams`),
    as ``harness.checks.known_checks()`` gives them. With them, an unknown check name and any entry that
    does not fit its check's declaration are errors; without them, names and parameters are not judged. When
    they also say what each check measures (``KnownChecks.measures``), a relative bar on a check that measures
    no single calibrated value is an error too.
    ``resolve_specs=False``: the ``module:Class`` specs are taken as written, not imported (a self-check
    bundle's rubric, where the reference classes are not installed).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise RubricError(f"{name}: invalid YAML{where}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise RubricError(f"{name}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RubricError(
            f"{name}: a rubric is a mapping with assignment, title, datasets and tasks; got {type(data).__name__}"
        )
    # what each check measures, when the caller says (harness.checks.KnownChecks): a relative bar needs one value
    measures = getattr(known_checks, "measures", None)
    context = {"known_checks": None if known_checks is None else dict(known_checks), "measures": measures,
               "resolve_specs": resolve_specs}
    try:
        rubric = Rubric.model_validate(data, context=context)
    except ValidationError as e:
        lines = _error_lines(e, data, Rubric)
        if len(lines) == 1:
            raise RubricError(f"{name}: {lines[0]}") from None
        raise RubricError(f"{name}: {len(lines)} problems:\n" + "\n".join(f"  {line}" for line in lines)) from None
    raw = text.encode() if isinstance(text, str) else text
    rubric._hash = hashlib.sha256(raw).hexdigest()
    return rubric


def load_rubric(path: str | Path, known_checks: Mapping[str, type[BaseModel]] | None = None) -> Rubric:
    """Load and validate a rubric file against the registered checks, when given (see :func:`parse_rubric`)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RubricError(f"{path}: cannot read the rubric ({e.strerror or e})") from None
    rubric = parse_rubric(raw, str(path), known_checks)
    rubric._path = path
    return rubric
