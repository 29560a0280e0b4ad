"""Call the functions a rubric names on fixed inputs (``calls``) and list the functions and classes the student
defined (``callables``); runs in the sandbox."""

from __future__ import annotations

import itertools
import time
import types
from typing import Any

import numpy as np
import torch

from harness.contract import MAX_CALL_VALUES, MAX_CALLABLES
from harness.probes import fixed_inputs
from harness.probes.candidates import defined_by_student
from harness.probes.capture import TORCH, cap_text, json_number, one_line, safe_isinstance, time_limit
from harness.probes.namespace import MAX_CONTAINER_ITEMS, MAX_JSON_ITEMS


def find_callables(items: list[tuple[str, Any]], module_name: str, workspace: str | None) -> list[str]:
    """Sorted namespace names bound to functions and classes the student defined (not imported ones)."""
    names = []
    for name, value in items:
        try:
            if not (safe_isinstance(value, type) or safe_isinstance(value, types.FunctionType)):
                continue
            if defined_by_student(value, module_name, workspace):
                names.append(name)
        except Exception:
            continue
    return sorted(names)[:MAX_CALLABLES]


def record_calls(
    namespace: dict[str, Any], specs: Any, step_s: float, deadline: float, errors: list[str]
) -> dict[str, dict[str, Any]]:
    """Call the functions a rubric names on fixed inputs (``fixed_inputs.build``); one record per call id."""
    results: dict[str, dict[str, Any]] = {}
    try:
        specs = list(specs)[:MAX_CONTAINER_ITEMS]
    except Exception:
        specs = []
    for spec in specs:
        try:
            call_id = str(spec["id"])
            names = [str(name) for name in spec.get("names", ())]
            kind = str(spec.get("inputs", ""))
        except Exception as error:
            errors.append(f"a call in the probe's configuration is malformed: {one_line(error)}")
            continue
        results[call_id] = _call(namespace, names, kind, step_s, deadline)
    return results


def _call(namespace: dict[str, Any], names: list[str], kind: str, step_s: float, deadline: float) -> dict[str, Any]:
    """Try the named callables in order; the first call that returns a number wins, else the first one's error."""
    present = [(name, namespace[name]) for name in names if name in namespace]
    functions = [(name, value) for name, value in present if _is_function(value)]
    if not functions:
        listed = ", ".join(names)
        if not present:
            error = f"none of {listed} is defined"
        else:
            kinds = ", ".join(f"{name} is a {_type_name(value)}" for name, value in present)
            error = f"none of {listed} is a function ({kinds})"
        return {"function": None, "value": None, "values": [], "error": cap_text(error, 2_000)}
    first = None
    for name, function in functions:
        left = deadline - time.monotonic()
        if left <= 0:
            outcome = {"function": name, "value": None, "values": [], "error": "the probe ran out of time before "
                       "calling it"}
        else:
            outcome = {"function": name, **_call_one(function, kind, min(step_s, left))}
        if outcome["error"] is None:
            return outcome
        first = first or outcome
    assert first is not None
    return first


def _is_function(value: Any) -> bool:
    """Callable and not a class (calling a class builds an object, not a result)."""
    try:
        return callable(value) and not safe_isinstance(value, type)
    except Exception:
        return False


def _type_name(value: Any) -> str:
    try:
        return cap_text(type(value).__name__, 100)
    except Exception:
        return "object"


def _call_one(function: Any, kind: str, limit: float) -> dict[str, Any]:
    """Call ``function`` on fresh fixed inputs without gradients, under ``limit`` seconds; read the numbers back."""
    record: dict[str, Any] = {"value": None, "values": [], "error": None}
    try:
        arguments = fixed_inputs.build(kind)
    except Exception as error:
        record["error"] = one_line(error)
        return record
    try:
        with time_limit(limit), TORCH.no_grad():
            result = function(*arguments)
            record["result_type"] = _type_name(result)
            numbers = _result_numbers(result)
    except (Exception, SystemExit) as error:
        record["error"] = one_line(error)
        return record
    record["values"] = [json_number(n) for n in numbers]
    record["value"] = record["values"][0]
    if record["value"] is None:
        record["error"] = f"ValueError: the result is {numbers[0]}, not a finite number"
    return record


def _result_numbers(result: Any) -> list[float]:
    """The number a call returned, or the numbers in its tuple/list result (at most ``MAX_CALL_VALUES``)."""
    if safe_isinstance(result, (tuple, list)):
        numbers = []
        for item in itertools.islice(iter(result), MAX_JSON_ITEMS):
            number = _single_number(item)
            if number is not None:
                numbers.append(number)
                if len(numbers) == MAX_CALL_VALUES:
                    break
        if not numbers:
            raise TypeError(f"the result is a {_type_name(result)} with no single number in it")
        return numbers
    number = _single_number(result)
    if number is None:
        if safe_isinstance(result, TORCH.tensor_type):
            raise TypeError(f"the result is a tensor of shape {list(result.shape)}, not a single number")
        raise TypeError(f"the result is a {_type_name(result)}, not a number")
    return [number]


def _single_number(value: Any) -> float | None:
    """A one-element real tensor or a real number as a float; None for anything else."""
    if safe_isinstance(value, TORCH.tensor_type):
        if TORCH.numel(value) != 1 or value.is_complex():
            return None
        return float(value.detach().to("cpu", torch.float64).reshape(-1)[0].item())
    if type(value) in (int, float) or safe_isinstance(value, (np.integer, np.floating)):
        return float(value)
    return None
