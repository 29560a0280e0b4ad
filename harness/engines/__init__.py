"""Execute a submission's notebooks and scripts inside the sandbox; :class:`Engine` owns the lifecycle.

    engine = Engine(make_sandbox(), kind_for("CNNMNIST.ipynb"))
    result = engine.run(submission, "CNNMNIST.ipynb", out_dir, RunSettings(eval_images={"mnist": images}))

``harness.engines.runner`` is the entry point that runs inside the sandbox; one engine serves both kinds
of source, the runner's ``--kind`` telling notebooks (cell by cell with nbclient, in a fresh kernel,
errors allowed) from scripts (as ``__main__`` in their own folder, ``sys.argv == [script]``).
"""

from __future__ import annotations

from harness.engines.base import KINDS, Engine, RunSettings, make_workspace, read_execution, read_run_json
from harness.errors import HarnessError

SUFFIXES = {"ipynb": "notebook", "py": "script"}
"""The kind of source each file suffix is."""


def kind_for(source: str) -> str:
    """The kind of a source file, by its suffix (``.ipynb`` notebook, ``.py`` script)."""
    suffix = source.rsplit(".", 1)[-1].lower() if "." in source else ""
    if suffix not in SUFFIXES:
        raise HarnessError(f"cannot run {source}: only notebooks (.ipynb) and scripts (.py) can be run")
    return SUFFIXES[suffix]


__all__ = ["KINDS", "Engine", "RunSettings", "kind_for", "make_workspace", "read_execution", "read_run_json"]
