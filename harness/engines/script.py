"""Run a Python script or module as ``__main__``, then probe its globals (even after an exception)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from harness.engines.base import Engine, runner_command


class ScriptEngine(Engine):
    """Executes a ``.py`` file inside the sandbox, in its own folder, with ``sys.argv == [script]``."""

    kind: ClassVar[str] = "script"

    def command(self, source: str, config: Path, artifacts: Path) -> list[str]:
        """The runner in script mode."""
        return runner_command(self.kind, source, config, artifacts)
