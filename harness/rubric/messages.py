"""Turning pydantic's validation errors into messages a TA reads: the field's path, and the reason in words.

A path names tasks by id and check entries by check (``tasks[2] (cnn) > checks[1] (parameter_count) >
equals``); a reason says what was expected and what was given, with a "did you mean" for a misspelt key.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from harness.rubric.params import _model_in


def _problem(path: str, reason: str) -> PydanticCustomError:
    """An error at ``path`` below the validator's own field, with a reason in plain words."""
    return PydanticCustomError("rubric", "{reason}", {"path": path, "reason": reason})


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """`` (did you mean 'equals'?)`` when ``name`` looks like a misspelling of one of ``options``; else empty.

    The one "did you mean" of every message that names something unknown (a rubric key, a check, a task id, a
    student), so they all read alike."""
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- errors of a check entry against its check's declaration -----------------------------------------------------


def _first_line(text: str | None) -> str:
    """A field docstring's first sentence, as the tail of a message (``the number of trainable parameters ...``)."""
    if not text:
        return ""
    line = text.strip().split("\n")[0].rstrip(".")
    # "The number of ..." reads on after "required: " in lower case; "PCA's ..." keeps its capitals
    return line[:1].lower() + line[1:] if line[1:2].islower() or len(line) == 1 else line


def _looks_numeric(text: str) -> bool:
    """Whether Python reads ``text`` as a finite number."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _declared_reason(error: Any, declaration: type[BaseModel], check: str) -> tuple[tuple[str | int, ...], str]:
    """Where in a check entry one error of its declaration lies, and the reason in words."""
    loc, kind, value = tuple(error["loc"]), error["type"], error.get("input")
    if kind == "rubric":
        path = [p for p in str(error["ctx"]["path"]).split(".") if p]
        return loc + tuple(path), str(error["ctx"]["reason"])
    section = declaration
    for part in loc[:-1]:
        if isinstance(part, str) and section is not None and part in section.model_fields:
            section = _model_in(section.model_fields[part].annotation)
    name = str(loc[-1]) if loc else ""
    in_params = len(loc) > 1 and loc[0] == "params"
    if kind == "missing":
        info = section.model_fields.get(name) if section is not None else None
        about = _first_line(info.description if info is not None else None)
        return loc, f"required: {about}" if about else "required"
    if kind == "extra_forbidden":
        allowed = [f for f in (section.model_fields if section is not None else {}) if f != "params"]
        hint = did_you_mean(name, allowed)
        if in_params:
            return loc, f"{check} has no params key {name!r}{hint}; its params: {', '.join(allowed) or 'none'}"
        if name == "params":
            return loc, f"{check} takes no params"
        reads = ", ".join(allowed) or "nothing besides points"
        return loc, f"{check} does not read {name}{hint}; it reads: {reads}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return loc, f"expected an integer, got {_shown(value)}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        if isinstance(value, str) and _looks_numeric(value):
            # PyYAML reads 1e-3 (no dot) as text
            return loc, f"expected a number, got the text {_shown(value)}: write it with a dot, e.g. 1.0e-3"
        return loc, f"expected a number, got {_shown(value)}"
    if kind == "string_type":
        return loc, f"expected text, got {_shown(value)}"
    if kind == "literal_error":
        return loc, f"expected {error['ctx']['expected']}, got {_shown(value)}"
    return loc, _reason(error)


# -- errors of the rubric's sections -----------------------------------------------------------------------------


def _path_text(loc: Iterable[str | int], data: Any = None) -> str:
    """``("tasks", 2, "checks", 1, "equals")`` -> ``tasks[2] (cnn) > checks[1] (parameter_count) > equals``.

    A task is labelled with its id and a check entry with its check's name, read from the rubric's data.
    """
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            if not parts:
                parts.append("")
            parts[-1] += f"[{part}]"
            node = node[part] if isinstance(node, list) and -len(node) <= part < len(node) else None
            label = node.get("id", node.get("check")) if isinstance(node, dict) else None
            if isinstance(label, str) and label:
                parts[-1] += f" ({label})"
        elif part:
            parts.append(str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return " > ".join(parts)


def _section_model(loc: tuple[str | int, ...], root: type[BaseModel] | None) -> type[BaseModel] | None:
    """The rubric section (pydantic model) found at ``loc``, following field annotations from ``root`` (Rubric)."""
    model = root
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _model_in(model.model_fields[part].annotation)
    return model


def _shown(value: Any) -> str:
    """A short rendering of an offending value."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _reason(error: Any, root: type[BaseModel] | None = None) -> str:
    """One pydantic error in plain words; ``root``, the model validated, gives an unknown key the keys allowed."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "rubric":
        return str(ctx["reason"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        parent = _section_model(tuple(error["loc"][:-1]), root)
        name = str(error["loc"][-1])
        if parent is None:
            return "is not a known field"
        allowed = [f for f in parent.model_fields]
        return f"is not a known field{did_you_mean(name, allowed)}; allowed here: {', '.join(allowed)}"
    bounds = {"greater_than": ("gt", "greater than"), "greater_than_equal": ("ge", "at least"),
              "less_than": ("lt", "less than"), "less_than_equal": ("le", "at most")}
    if kind in bounds:
        key, words = bounds[kind]
        bound = ctx[key]
        shown = f"{bound:,}" if isinstance(bound, int) else f"{bound:g}"
        return f"must be {words} {shown}, got {_shown(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number, got {_shown(value)}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"must be a number, got {_shown(value)}"
    if kind == "string_type":
        return f"must be text, got {_shown(value)}"
    if kind in ("too_short", "string_too_short") and isinstance(value, (list, tuple, str)):
        return "must not be empty"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list, got {_shown(value)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of fields (key: value), got {_shown(value)}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {_shown(value)}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])


def _error_lines(exc: ValidationError, data: Any = None, root: type[BaseModel] | None = None) -> list[str]:
    """``field: reason`` lines for every distinct problem (union branches folded into their field).

    ``data`` is the rubric as read from YAML: it labels tasks and check entries in the field paths.
    ``root`` is the model it was validated against (:class:`~harness.rubric.schema.Rubric`): a key it does
    not know is answered with the keys allowed at its place.
    """
    lines: dict[str, str] = {}
    for error in exc.errors():
        loc = list(error["loc"])
        if "equals" in loc and loc[-1] != "equals":
            # A value every branch of equals' union rejects is reported once, at equals itself.
            loc = loc[: loc.index("equals") + 1]
            reason = f"must be a number, text, true/false or a list of those; got {_shown(error['input'])}"
            lines.setdefault(_path_text(loc, data), reason)
            continue
        if error["type"] == "rubric" and error["ctx"]["path"]:
            extra = str(error["ctx"]["path"]).replace("[", ".[").split(".")
            loc += [int(p[1:-1]) if p.startswith("[") else p for p in extra if p]
        path = _path_text(loc, data) or "(top level)"
        lines.setdefault(path, _reason(error, root))
    return [f"{path}: {reason}" for path, reason in lines.items()]
