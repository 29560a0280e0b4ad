"""Build a student's model again from their definitions alone and run it (runs in a second, clean sandbox).

    python -P -m harness.probes.rebuild FOLDER
    python -P -m harness.probes.rebuild --serve [--reap] [--prewarm LIBRARY]... FOLDER   (one rebuild per line read
        on stdin, below)

The host (``harness.checks.rebuild``) fills ``FOLDER`` with ``definitions.py`` (the imports, classes,
functions and constant assignments of the student's source, never the code that trained anything),
``request.json`` (``{"class_name", "args", "kwargs"}``), ``weights.pt`` (the state_dict the student's run
exported) and ``inputs.pt`` (the host's evaluation images, preprocessed as the student's run fed them).
This process runs the definitions, constructs the class with those arguments, loads the weights
strictly, and writes the model's outputs on every input to ``outputs.pt`` (flattened per row, as the
probe exports them), or ``result.json`` with ``{"error": ...}`` saying why it could not.

An argument that was a module the student's code built (``Classifier(ConvEncoder(12))``) is recorded as that
module's construction (``harness.contract.CONSTRUCTION``): it is built first, from the definitions' class or
torch.nn's own, with its own recorded arguments, and passed in. Its weights are the outer model's too (they
are in its state_dict), so they come from the export like the rest, never from the run.

``--serve FOLDER`` does every rebuild of one submission in one sandbox: it imports torch once, then reads the
names of request folders under ``FOLDER/in``, one per line on stdin, until end-of-file. Each request is done by a
fresh process forked for it (so no rebuild sees what another one's definitions did to the interpreter), in the
folder named by the request's ``cwd`` file (relative to the workspace), writing ``outputs.pt`` or ``result.json``
into ``FOLDER/out/<name>``; then this process writes ``done`` there (with the libraries of ``PREWARM`` the rebuild
found imported). The host writes requests into ``in``, and the sandbox's user writes only into ``out``.
``--prewarm LIBRARY`` (one of ``PREWARM``) is imported with torch, before the first rebuild: the host names it when
the submission's files mention it. Otherwise it is imported once a rebuild has used it.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

BATCH = 1_000
"""Inputs per forward pass."""

PREWARM = ("torchvision", "matplotlib.pyplot")
"""Installed libraries the serving process imports once a rebuild has used them, so the next rebuilds' processes,
forked from it, start with them loaded (a helper module importing torchvision costs a second each time otherwise,
pyplot a third of one). Only these: an installed library that starts threads on import would leave the forked
processes broken."""


def rebuild(folder: Path, out: Path | None = None) -> str:
    """Do the work described above, reading the request in ``folder`` and writing the outputs into ``out`` (the
    same folder when None); returns "" on success, else why the model could not be built or run."""
    import torch

    request = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    namespace: dict = {"__name__": "__gradebench_definitions__"}
    source = (folder / "definitions.py").read_text(encoding="utf-8")
    failed = ""
    # one statement at a time: an import the class does not need (wandb, google.colab) must not stop the rest
    for statement in ast.parse(source).body:
        try:
            exec(compile(ast.Module([statement], []), "definitions.py", "exec"), namespace)  # the student's, in the sandbox
        except Exception as error:
            line = source.splitlines()[statement.lineno - 1].strip()[:120]
            failed = failed or f" (`{line}` failed: {type(error).__name__}: {error})"
    # The record names no library for the model itself: the student's class of that name, else torch.nn's own
    # (``model = nn.Sequential(...)``). Either is only a vessel for the exported weights, whose outputs must match.
    name = request["class_name"]
    library = "torch.nn" if _own_class(name, namespace) is None and _torch_class(name) is not None else None
    model = _build({**request, "library": library}, namespace, failed)
    if isinstance(model, str):
        return model
    state = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=True)
    except BaseException as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"the exported weights do not fit a new {request['class_name']} ({first})"
    inputs = torch.load(folder / "inputs.pt", map_location="cpu", weights_only=True)
    model.eval()
    try:
        first, second = (_outputs(model, inputs, seed) for seed in (0, 1))
    except BaseException as error:
        return f"a new {request['class_name']} with the exported weights fails on the test images ({type(error).__name__}: {error})"
    if first.shape != second.shape or not torch.allclose(first, second, rtol=1e-4, atol=1e-5):
        # e.g. a VAE that samples its code in evaluation mode too: no second run can reproduce the first's values
        return "its forward pass is random (two runs on the same test images differ), so no run can reproduce its outputs"
    torch.save(first.contiguous(), (out or folder) / "outputs.pt")
    return ""


class _Unbuildable(Exception):
    """A construction in the request could not be built: the message says which and why."""


def _build(request: dict, namespace: dict, failed: str):
    """A new module as ``request`` (``{"class_name", "library", "args", "kwargs"}``) records it, its module
    arguments (``CONSTRUCTION``) built first; or why it could not be built (a sentence)."""
    try:
        return _construct(request, namespace, failed)
    except _Unbuildable as error:
        return str(error)


def _construct(request: dict, namespace: dict, failed: str):
    from harness.contract import CONSTRUCTION

    def argument(value):
        if isinstance(value, dict) and CONSTRUCTION in value:  # the host's contract checked its form
            return _construct(value[CONSTRUCTION], namespace, failed)
        return value

    name = request["class_name"]
    cls = _torch_class(name) if request["library"] == "torch.nn" else _own_class(name, namespace)
    if cls is None:
        raise _Unbuildable(f"no class {name} is defined in your code outside the cells that ran it{failed}")
    args = [argument(value) for value in request["args"]]
    kwargs = {key: argument(value) for key, value in request["kwargs"].items()}
    try:
        return cls(*args, **kwargs)
    except BaseException as error:
        raise _Unbuildable(f"{name}(...) fails on its own ({type(error).__name__}: {error})") from None


def _torch_class(name: str):
    """torch.nn's module class ``name``; None when torch.nn has none."""
    from torch import nn

    cls = getattr(nn, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, nn.Module) else None


def _own_class(name: str, namespace: dict):
    """The module class ``name`` of the student's definitions, or of the submission's modules they imported; None."""
    from torch import nn

    cls = namespace.get(name)
    return cls if isinstance(cls, type) and issubclass(cls, nn.Module) else _imported_class(name)


def _imported_class(name: str):
    """The module class ``name`` defined in one of the submission's own modules that the definitions imported, when
    exactly one class has that name there (``main.py`` runs ``import trainers.q2``, which builds a ``Classifier`` it
    imported from ``models/encoder.py``: main.py's definitions never name it); else None."""
    from torch import nn

    folder = os.path.realpath(os.getcwd())
    found = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not os.path.realpath(path).startswith(folder + os.sep):
            continue
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            found.add(cls)
    return found.pop() if len(found) == 1 else None


def _outputs(model, inputs, seed: int):
    """The model's outputs on ``inputs`` in batches, with the random generator seeded: (N, D), float32."""
    import torch

    torch.manual_seed(seed)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(inputs), BATCH):
            output = model(inputs[start : start + BATCH])
            while isinstance(output, (tuple, list)) and output:
                output = output[0]
            chunks.append(output.float().reshape(len(output), -1))
    return torch.cat(chunks)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``FOLDER`` (one rebuild; exit status 0 when ``outputs.pt`` or ``result.json`` was written), or
    ``--serve FOLDER`` (the rebuilds named on stdin, as the module's docstring says)."""
    args = argv if argv is not None else sys.argv[1:]
    if args and args[0] == "--serve":
        prewarm = [args[i + 1] for i, arg in enumerate(args[:-2]) if arg == "--prewarm"]
        return serve(Path(args[-1]), reap="--reap" in args, prewarm=prewarm)
    return _one(Path(args[0]), Path(args[0]))


def _one(folder: Path, out: Path) -> int:
    """One rebuild in this process, in the current folder: reads ``folder``, writes into ``out``."""
    # ``-P`` keeps the working folder off sys.path; it is the student's source's folder, whose helper modules the
    # definitions import, as the student's run imported them (harness.engines.runner). Last on the path, so a
    # student's file named torch.py cannot stand in for the torch that loads the weights and saves the outputs.
    sys.path.append(os.getcwd())
    try:
        problem = rebuild(folder, out)
    except BaseException:
        problem = "the rebuild failed: " + traceback.format_exc(limit=3)[-1_000:]
    (out / "result.json").write_text(json.dumps({"error": problem[:2_000]}), encoding="utf-8")
    return 0


def serve(folder: Path, reap: bool = False, prewarm: Sequence[str] = ()) -> int:
    """Do the rebuilds named on stdin, each in a process forked from this one (torch already imported).

    ``reap`` (only in a sandbox with its own process namespace, where every process but this one and the
    namespace's init is a rebuild's): after each rebuild, every process it left behind is killed, so nothing one
    rebuild's code started can touch the next one's files. This process is made non-dumpable, so no rebuild's code
    (the same user) can attach to it. ``prewarm``: libraries of ``PREWARM`` to import now too (others are ignored)."""
    importlib.import_module("torch")  # every rebuild needs it: imported once, before any student's code
    _prewarm(prewarm)

    _not_traceable()
    root = os.getcwd()
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            return 0
        name = line.decode("ascii", "replace").strip()
        if not name or "/" in name or name.startswith("."):
            continue
        request, out = folder / "in" / name, folder / "out" / name
        out.mkdir(parents=True, exist_ok=True)
        warm = [library for library in PREWARM if library in sys.modules]
        pid = os.fork()
        if pid == 0:  # the rebuild's own process: the student's definitions run here only
            code = 1
            try:
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the next requests are not its to read
                where = (request / "cwd").read_text(encoding="utf-8").strip() if (request / "cwd").is_file() else "."
                os.chdir(os.path.join(root, where))
                code = _one(request, out)
                (out / "imported.json").write_text(json.dumps([m for m in PREWARM if m in sys.modules]))
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:
                        pass
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if reap:
            _reap_others()
        _prewarm(_listed(out / "imported.json"))
        done = out / "done.tmp"
        done.write_text(json.dumps({"status": os.waitstatus_to_exitcode(status), "warm": warm}), encoding="utf-8")
        done.replace(out / "done")


def _not_traceable() -> None:
    """PR_SET_DUMPABLE 0: processes of the same user cannot ptrace this one (nor read its memory)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        pass


def _reap_others() -> None:
    """SIGKILL every process of this namespace but this one, its parent and init, until none is left."""
    import signal

    spared = {1, os.getpid(), os.getppid()}
    for _ in range(100):
        others = [int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) not in spared]
        if not others:
            return
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


def _listed(path: Path) -> list[str]:
    """The libraries a rebuild listed in ``path`` as imported; none when it wrote no such list."""
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def _prewarm(names: Sequence[str]) -> None:
    """Import the libraries of ``PREWARM`` among ``names`` not imported yet (others are ignored). One that fails is
    left to the rebuild that needs it, which fails in its own process as it would have anyway."""
    for name in PREWARM:
        if name in names and name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:
                pass


if __name__ == "__main__":
    sys.exit(main())
