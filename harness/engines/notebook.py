"""Run a Jupyter notebook: its code cells in a fresh kernel, errors allowed, then the probe."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from harness.engines.base import Engine, runner_command


class NotebookEngine(Engine):
    """Executes an ``.ipynb`` cell by cell with nbclient inside the sandbox (see ``harness.engines.runner``)."""

    kind: ClassVar[str] = "notebook"

    def command(self, source: str, config: Path, artifacts: Path) -> list[str]:
        """The runner in notebook mode."""
        return runner_command(self.kind, source, config, artifacts)
