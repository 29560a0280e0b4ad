"""What every probe step relies on (runs in the sandbox): torch captured before the student's code, time limits,
and text and JSON that are safe to write.

The student's code runs in the probe's process and could monkeypatch torch, so the torch functions the probe
uses (``TORCH``) are captured when this module is first imported (by ``bootstrap.install``, through
:mod:`harness.probes.probe`, before the student's code runs).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class _Torch:
    """The torch functions the probe calls, captured before the student's code can replace them."""

    save: Callable[..., Any] = torch.save
    zeros: Callable[..., Any] = torch.zeros
    randn: Callable[..., Any] = torch.randn
    from_numpy: Callable[..., Any] = torch.from_numpy
    cat: Callable[..., Any] = torch.cat
    stack: Callable[..., Any] = torch.stack
    is_tensor: Callable[..., Any] = torch.is_tensor
    numel: Callable[..., Any] = torch.Tensor.numel
    data_ptr: Callable[..., Any] = torch.Tensor.data_ptr
    inference_mode: Callable[..., Any] = torch.inference_mode
    no_grad: Callable[..., Any] = torch.no_grad
    generator: Callable[..., Any] = torch.Generator
    named_modules: Callable[..., Any] = nn.Module.named_modules
    named_parameters: Callable[..., Any] = nn.Module.named_parameters
    named_buffers: Callable[..., Any] = nn.Module.named_buffers
    children: Callable[..., Any] = nn.Module.children
    state_dict: Callable[..., Any] = nn.Module.state_dict
    train: Callable[..., Any] = nn.Module.train
    register_forward_hook: Callable[..., Any] = nn.Module.register_forward_hook
    module_call: Callable[..., Any] = nn.Module.__call__
    module_repr: Callable[..., Any] = nn.Module.__repr__
    tensor_type: type = torch.Tensor
    module_type: type = nn.Module
    loss_type: type = nn.modules.loss._Loss
    optimizer_type: type = torch.optim.Optimizer


TORCH = _Torch()


class ProbeTimeout(Exception):
    """One probe step (constructing a class, a forward pass) ran over its time limit."""


def safe_isinstance(value: Any, kind: type | tuple[type, ...]) -> bool:
    """isinstance that a hostile ``__class__`` cannot turn into an exception."""
    try:
        return isinstance(value, kind)
    except Exception:
        return False


def first_tensor(value: Any) -> torch.Tensor | None:
    if safe_isinstance(value, TORCH.tensor_type):
        return value
    if type(value) in (tuple, list) and value:
        return first_tensor(value[0])
    return None


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ProbeTimeout in the main thread after ``seconds``; no limit off the main thread."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise ProbeTimeout(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def one_line(error: BaseException) -> str:
    """``TypeError: message``, cut to a readable length."""
    return cap_text(f"{type(error).__name__}: {error}", 2_000)


def cap_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + " ... [cut]"


def json_number(value: Any) -> float | int | None:
    if type(value) is bool or value is None:
        return None
    try:
        number = float(value)
    except Exception:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if type(value) is int or safe_isinstance(value, np.integer) else number


def json_value(value: Any, depth: int = 0) -> Any:
    """A JSON scalar or short list of them; anything else becomes its (capped) text."""
    if value is None or type(value) is bool:
        return value
    if type(value) is str:
        return cap_text(value, 2_000)
    if type(value) in (int, float) or safe_isinstance(value, (np.integer, np.floating)):
        return json_number(value)
    if type(value) in (list, tuple) and depth < 2 and len(value) <= 100:
        return [json_value(v, depth + 1) for v in value]
    return cap_text(str(value), 2_000)


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write JSON atomically, so a killed probe leaves no half-written file."""
    temporary = path.with_suffix(".json.partial")
    temporary.write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
    os.replace(temporary, path)
