"""Random draws the student's code feeds to a network, kept for the host (runs in the sandbox).

Students often draw the latent samples they decode inside a function::

    def plot_generated_samples(model, n):
        z = torch.randn(n, latent_dim)
        images = model.decoder(z)

so ``z`` is gone when the probe reads the namespace. ``install`` wraps ``torch.randn``,
``torch.randn_like`` and ``torch.normal`` to remember (weakly) the last tensors they returned,
and adds a global forward pre-hook on every ``nn.Module``: the first time one of those tensors
(or a view of it: the same storage) is the input of a module, it is saved as
``draws/<k>.pt`` and described in ``draws/draws.json`` (ARTIFACTS.md, "Latent draws"), with the
function that drew it and the module it went into. Draws that only enter arithmetic (the
reparameterisation noise ``mu + eps * std`` during training) are never saved.

Nothing here may break the student's run: every failure just leaves a draw unrecorded.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import weakref
from collections import deque
from pathlib import Path
from typing import Any

FOLDER = "draws"
"""Folder under the artifacts folder holding the recorded draws and ``draws.json``."""

INDEX = "draws/draws.json"
"""The description of the recorded draws, relative to the artifacts folder."""

MAX_DRAWS = 8
"""Draws saved at most per run (the first ones fed to a module)."""

MAX_DRAW_ELEMENTS = 262_144
"""Largest draw saved (elements); a bigger one is not a batch of latent vectors."""

TRACKED = 32
"""Recent draws remembered while waiting to be fed to a module."""

WRAPPED = ("randn", "randn_like", "normal")
"""The ``torch`` functions whose results are watched."""

_INSTALLED = "__gradebench_draws__"


class _Recorder:
    """Remembers recent draws by storage and saves those a module receives."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.recent: deque[tuple[Any, int, str, str]] = deque(maxlen=TRACKED)
        """(weak reference to the tensor, storage address, drawing function, torch function)."""
        self.entries: list[dict[str, Any]] = []
        """What ``draws.json`` lists."""
        self.saved: set[int] = set()
        """Storage addresses already saved (a draw is saved once, at its first module)."""

    def drew(self, tensor: Any, how: str, caller: str) -> None:
        if len(self.entries) >= MAX_DRAWS or tensor.numel() > MAX_DRAW_ELEMENTS or tensor.numel() == 0:
            return
        address = _storage(tensor)
        # a fresh draw may reuse the memory of an earlier one that was saved and freed: it is a new draw
        self.saved.discard(address)
        self.recent.append((weakref.ref(tensor), address, caller, how))

    def fed(self, module: Any, args: Any) -> None:
        """Forward pre-hook of every module: save a watched draw found among the inputs."""
        if not self.recent or len(self.entries) >= MAX_DRAWS:
            return None
        try:
            for value in args if isinstance(args, tuple) else (args,):
                address = _storage(value) if hasattr(value, "untyped_storage") else None
                if address is None or address in self.saved:
                    continue
                for reference, stored, caller, how in reversed(self.recent):
                    draw = reference()
                    if draw is not None and stored == address:
                        self.save(draw, caller, how, type(module).__name__)
                        break
        except Exception:  # a draw we cannot record is only a missing draw
            pass
        return None

    def save(self, draw: Any, caller: str, how: str, module: str) -> None:
        import torch

        self.saved.add(_storage(draw))
        self.folder.mkdir(parents=True, exist_ok=True)
        relative = f"{FOLDER}/{len(self.entries)}.pt"
        torch.save(draw.detach().to("cpu", torch.float32).contiguous().clone(), self.folder / f"{len(self.entries)}.pt")
        self.entries.append(
            {"tensor": relative, "shape": [int(d) for d in draw.shape], "function": caller[:200], "drawn_with": how,
             "module": module[:200]}
        )
        temporary = self.folder / "draws.json.partial"
        temporary.write_text(json.dumps({"format": 1, "draws": self.entries}), encoding="utf-8")
        os.replace(temporary, self.folder / "draws.json")


def _storage(tensor: Any) -> int:
    return int(tensor.untyped_storage().data_ptr())


def _script_as(wrapper: Any, op: str) -> None:
    """Let TorchScript compile a call of ``wrapper`` as the builtin ``op`` (``@torch.jit.script`` code using torch.randn)."""
    try:
        from torch.jit._builtins import _register_builtin

        _register_builtin(wrapper, op)
    except Exception:  # another torch: scripted code calling the wrapper fails to compile, nothing else changes
        pass


def install(artifacts: str | os.PathLike[str]) -> None:
    """Watch torch's random draws and record those fed to a module into ``<artifacts>/draws``; idempotent."""
    import torch
    from torch.nn.modules.module import register_module_forward_pre_hook

    if getattr(torch.randn, _INSTALLED, False):
        return
    recorder = _Recorder(Path(artifacts) / FOLDER)
    for name in WRAPPED:
        original = getattr(torch, name)

        def wrapper(*args: Any, __original: Any = original, __name: str = name, **kwargs: Any) -> Any:
            result = __original(*args, **kwargs)
            try:
                if isinstance(result, torch.Tensor) and result.is_floating_point():
                    recorder.drew(result, f"torch.{__name}", sys._getframe(1).f_code.co_name)
            except Exception:
                pass
            return result

        functools.update_wrapper(wrapper, original)
        setattr(wrapper, _INSTALLED, True)
        _script_as(wrapper, f"aten::{name}")
        setattr(torch, name, wrapper)
    register_module_forward_pre_hook(recorder.fed)
