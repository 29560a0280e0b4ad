"""harness.probes.draws: the random draws fed to a module are recorded, and nothing else about torch changes.

``install`` patches torch for the rest of the process, so each test runs it in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import torch


def run(code: str, artifacts: Path) -> subprocess.CompletedProcess:
    script = artifacts.parent / "script.py"  # a file: TorchScript reads the source of what it compiles
    script.write_text(f"import harness.probes.draws as draws\ndraws.install({str(artifacts)!r})\n" + textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)


def test_scripted_and_plain_code_still_draw_and_decoded_draws_are_saved(tmp_path):
    done = run(
        """
        import torch
        @torch.jit.script
        def noise(n: int) -> torch.Tensor:
            return torch.randn(n, 2) + torch.normal(0.0, 1.0, size=[n, 2])
        assert noise(3).shape == (3, 2)
        decoder = torch.nn.Linear(2, 4)
        def generate(n):
            z = torch.normal(0.0, 1.0, size=(n, 2))
            return decoder(z.reshape(n, 2))
        generate(20)
        """,
        tmp_path / "artifacts",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    index = json.loads((tmp_path / "artifacts" / "draws" / "draws.json").read_text())
    assert index["draws"] == [{"tensor": "draws/0.pt", "shape": [20, 2], "function": "generate",
                               "drawn_with": "torch.normal", "module": "Linear"}]
    assert torch.load(tmp_path / "artifacts" / "draws" / "0.pt", weights_only=True).shape == (20, 2)


def test_at_most_eight_draws_are_kept_and_huge_ones_are_not(tmp_path):
    done = run(
        """
        import torch
        layer = torch.nn.Identity()
        layer(torch.randn(600, 600))  # 360,000 elements: not a batch of latent vectors
        for _ in range(12):
            layer(torch.randn(4, 2))
        """,
        tmp_path / "artifacts",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shapes = [d["shape"] for d in json.loads((tmp_path / "artifacts" / "draws" / "draws.json").read_text())["draws"]]
    assert shapes == [[4, 2]] * 8
