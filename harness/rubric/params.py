"""What a check declares about its rubric entry: the keys it reads, their types, and the parts they name.

A check registers a :class:`CheckParams` model (``@check("parameter_count", params=ParameterCountParams)`` in
:mod:`harness.checks`); the rubric validates each entry against it (see :mod:`harness.rubric`), and
``gradebench checks`` lists what it declares (:func:`declared_keys`). The field types here (:data:`Count`,
:data:`Fraction`, :data:`TaskId`...) are what a declaration's fields are built from.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.fields import FieldInfo

_NAME = re.compile(r"[A-Za-z_]\w*")

# Shared with the rubric's own sections (harness.rubric.schema): one name or a list; a Python name.


def _one_or_many(value: Any) -> Any:
    """Accept a single string where a list of alternatives is allowed."""
    return [value] if isinstance(value, str) else value


def _python_name(value: str) -> str:
    """Refuse a string that is not a Python identifier (a namespace name)."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a Python name (letters, digits and underscores, not starting with a digit)")
    return value


class CheckParams(BaseModel):
    """Base of a check's declaration: the keys of its rubric entry it reads, with their types and defaults.

    A field named like a common key (``equals``, ``min``, ``max``, ``relative_to_reference``, ``layer``,
    ``tolerance``) declares that key: required without a default, accepted with one; a common key the model
    does not name is refused. A field ``params`` (itself a ``CheckParams`` model) declares the check's own
    options. Each field's docstring says what it means: it is what a course author reads, and what a
    "required" message quotes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class NoParams(CheckParams):
    """The declaration of a check that reads nothing from its entry but its points."""


@dataclass(frozen=True)
class Names:
    """Marks a ``params`` field naming another part of the rubric, which must exist when the rubric loads.

    ``task``: an automatic task graded before this one (its results are compared with);
    ``probe_call``: a call of the probe block of this task's source; ``probe_value``: values (one name or a
    list) recorded by the probe block of this task's source.
    """

    what: Literal["task", "probe_call", "probe_value"]


TaskId = Annotated[str, Field(strict=True, min_length=1), Names("task")]
"""A params field naming an automatic task graded earlier (``task: autoencoder``)."""

ProbeCallId = Annotated[str, Field(strict=True, min_length=1), Names("probe_call")]
"""A params field naming a probe call of the task's source (``call: vae_loss``)."""


def _python_names(value: Any) -> Any:
    """One name or a list of names -> a list; each must be a Python name."""
    value = _one_or_many(value)
    if isinstance(value, list):
        for name in value:
            if isinstance(name, str):
                _python_name(name)
    return value


PythonNames = Annotated[
    tuple[Annotated[str, Field(strict=True)], ...], Field(min_length=1), BeforeValidator(_python_names)
]
"""One Python name or a non-empty list of them (``names: [plot_generated_samples]``)."""

ProbeValueNames = Annotated[PythonNames, Names("probe_value")]
"""Namespace values the probe block of the task's source records (``values: [z, z_samples]``)."""

Count = Annotated[int, Field(strict=True, ge=1)]
"""A whole number of at least 1."""

Fraction = Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)]
"""A number in (0, 1]: an accuracy, a share."""

PositiveNumber = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
"""A number above 0."""


def _regex(value: str) -> str:
    """Refuse a pattern Python's ``re`` cannot compile."""
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"{value!r} is not a valid regular expression: {error}") from None
    return value


Regex = Annotated[str, Field(strict=True, min_length=1), AfterValidator(_regex)]
"""A regular expression (Python syntax), matched case-insensitively."""


def references(declaration: type[BaseModel]) -> list[tuple[str, str]]:
    """``(params key, what it names)`` for every field of the declaration's ``params`` marked with :class:`Names`."""
    field = declaration.model_fields.get("params")
    options = _model_in(field.annotation) if field is not None else None
    if options is None:
        return []
    found = []
    for name, info in options.model_fields.items():
        marker = next((m for m in info.metadata if isinstance(m, Names)), None) or _marker_in(info.annotation)
        if marker is not None:
            found.append((name, marker.what))
    return found


@dataclass(frozen=True)
class DeclaredKey:
    """One key of a check entry as its check declares it (``gradebench checks`` lists them)."""

    key: str
    """``equals``, or ``params.kind`` for a key of the check's own params."""
    takes: str
    """What it takes, in words: ``integer >= 1``, ``'mse' | 'l1'``, ``list of text``."""
    required: bool
    """Whether the entry must give it."""
    default: Any
    """Its value when not given (None when required, or when leaving it out means "not used")."""
    about: str
    """The field's docstring."""


def declared_keys(declaration: type[BaseModel]) -> list[DeclaredKey]:
    """Every key a check's declaration names, common keys first, then those of its ``params``."""
    found = []
    for name, info in declaration.model_fields.items():
        options = _model_in(info.annotation) if name == "params" else None
        if options is None:
            found.append(_declared_key(name, info))
        else:
            found += [_declared_key(f"params.{inner}", sub) for inner, sub in options.model_fields.items()]
    return found


def _declared_key(key: str, info: Any) -> DeclaredKey:
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    about = " ".join(line.strip() for line in (info.description or "").splitlines() if line.strip())
    return DeclaredKey(key, _takes(info.annotation, info.metadata), info.is_required(), default, about)


def _takes(annotation: Any, metadata: Iterable[Any] = ()) -> str:
    """A type annotation in words: ``Annotated[int, Ge(1)]`` -> ``integer >= 1``."""
    if typing.get_origin(annotation) is Annotated:
        return _takes(annotation.__origin__, annotation.__metadata__)
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        words = " | ".join(repr(a) for a in args)
    elif origin in (typing.Union, types.UnionType):
        words = " | ".join(_takes(a) for a in args if a is not type(None))
    elif origin in (list, tuple):
        words = f"list of {_takes(args[0])}" if args else "list"
    else:
        words = {int: "integer", float: "number", str: "text", bool: "true/false"}.get(annotation, str(annotation))
    bounds = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", ">="),
              (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "<="))
    flat = [inner for meta in metadata for inner in (meta.metadata if isinstance(meta, FieldInfo) else [meta])]
    for meta in flat:
        for cls, attribute, symbol in bounds:
            if isinstance(meta, cls):
                words += f" {symbol} {getattr(meta, attribute)}"
    return words


def _marker_in(annotation: Any) -> Names | None:
    """The :class:`Names` marker inside a type annotation (``TaskId | None`` -> ``Names("task")``), if any."""
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, Names):
            return meta
    for arg in typing.get_args(annotation):
        found = _marker_in(arg)
        if found is not None:
            return found
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The first pydantic model inside a type annotation (``tuple[Task, ...]`` -> Task)."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
