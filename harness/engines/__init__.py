"""Execute a submission's notebooks and scripts inside the sandbox; the base class owns the lifecycle.

    engine = get_engine("notebook")(make_sandbox())
    result = engine.run(submission, "CNNMNIST.ipynb", out_dir, RunSettings(eval_images={"mnist": images}))

``harness.engines.runner`` is the entry point that runs inside the sandbox.
"""

from __future__ import annotations

from harness.engines.base import Engine, RunSettings, make_workspace, read_execution, read_run_json
from harness.engines.notebook import NotebookEngine
from harness.engines.script import ScriptEngine
from harness.errors import HarnessError

ENGINES: dict[str, type[Engine]] = {"notebook": NotebookEngine, "script": ScriptEngine}
"""Engines by name."""


def get_engine(name: str) -> type[Engine]:
    """The engine class called ``name``."""
    try:
        return ENGINES[name]
    except KeyError:
        raise HarnessError(f"no engine {name!r}; known: {sorted(ENGINES)}") from None


def engine_for(source: str) -> type[Engine]:
    """The engine that runs a source file, by its suffix (``.ipynb`` notebook, ``.py`` script)."""
    suffix = source.rsplit(".", 1)[-1].lower() if "." in source else ""
    kinds = {"ipynb": "notebook", "py": "script"}
    if suffix not in kinds:
        raise HarnessError(f"cannot run {source}: only notebooks (.ipynb) and scripts (.py) can be run")
    return get_engine(kinds[suffix])


__all__ = ["ENGINES", "Engine", "NotebookEngine", "RunSettings", "ScriptEngine", "engine_for", "get_engine",
           "make_workspace", "read_execution", "read_run_json"]
