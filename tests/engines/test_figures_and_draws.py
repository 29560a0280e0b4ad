"""Figures shown as Jupyter shows them (one per cell end and per plt.show()), and latent draws made inside functions.

The runner runs for real (a kernel, no sandbox): these are the mechanism's own tests.
"""

from __future__ import annotations

import json

import torch

from tests.engines.test_runner import base_config, run_source, write_notebook


def sidecar(run, name: str) -> dict:
    return json.loads((run.artifacts / name).with_suffix(".json").read_text())


def kinds(info: dict) -> list[tuple[int, int, int]]:
    """(lines, scatters, images) per axes of a figure description."""
    return [(a["n_lines"], a["n_scatters"], a["n_images"]) for a in info["axes"]]


def test_three_cells_plotting_without_show_give_three_figures_each_with_its_cell(tmp_path):
    notebook = write_notebook(
        tmp_path / "no_show.ipynb",
        "import matplotlib.pyplot as plt\nimport numpy as np",
        "plt.plot([3, 2, 1], label='loss')\nplt.title('Loss')",
        "x = 1  # no figure here",
        "plt.scatter(np.arange(5), np.arange(5))\nplt.title('Latent space')",
        "fig, axes = plt.subplots(1, 2)\nfor a in axes:\n    a.imshow(np.zeros((28, 28)))",
        "%matplotlib inline\nplt.plot([1, 2])\nplt.show()\nplt.scatter([1], [2])",
    )
    run = run_source(tmp_path, notebook, "notebook", base_config())
    assert run.record["errors"] == []
    assert run.record["figure_cells"] == {
        "figures/0.png": 1, "figures/1.png": 3, "figures/2.png": 4, "figures/3.png": 5, "figures/4.png": 5,
    }
    assert kinds(sidecar(run, "figures/0.png")) == [(1, 0, 0)]  # the loss curve alone, not merged with the scatter
    assert sidecar(run, "figures/0.png")["axes"][0]["title"] == "Loss"
    assert kinds(sidecar(run, "figures/1.png")) == [(0, 1, 0)]
    assert kinds(sidecar(run, "figures/2.png")) == [(0, 0, 1), (0, 0, 1)]
    # %matplotlib inline keeps the saving backend: plt.show() and the cell's end both leave described figures
    assert kinds(sidecar(run, "figures/3.png")) == [(1, 0, 0)]
    assert kinds(sidecar(run, "figures/4.png")) == [(0, 1, 0)]
    assert run.probe["figures"] == [f"figures/{n}.png" for n in range(5)]


def test_a_script_shows_its_figures_at_plt_show_and_at_its_end(tmp_path):
    script = tmp_path / "plots.py"
    script.write_text(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([3, 2, 1])\nplt.show()\n"
        "plt.scatter([1, 2], [3, 4])  # never shown: the script's end shows it\n"
    )
    run = run_source(tmp_path, script, "script", base_config())
    assert run.record["figure_cells"] == {"figures/0.png": -1, "figures/1.png": -1}
    assert kinds(sidecar(run, "figures/1.png")) == [(0, 1, 0)]


def test_latent_samples_drawn_inside_a_function_are_recorded_when_decoded(tmp_path):
    notebook = write_notebook(
        tmp_path / "vae.ipynb",
        "import torch\nfrom torch import nn\n"
        "decoder = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 784))\n"
        "mu, std = torch.zeros(32, 2), torch.ones(32, 2)\n"
        "decoder(mu + torch.randn_like(std) * std)  # reparameterised noise: never the input itself\n"
        "decoder(torch.randn(64, 2) * 3)  # a scaled draw is a new tensor, not the draw",
        "def plot_generated_samples(model, n):\n"
        "    z = torch.randn(n, 2)\n"
        "    with torch.no_grad():\n"
        "        return model(z.view(n, 2))\n"
        "images = plot_generated_samples(decoder, 64)",
    )
    run = run_source(tmp_path, notebook, "notebook", base_config())
    assert run.record["errors"] == []
    index = json.loads((run.artifacts / "draws" / "draws.json").read_text())
    assert index["draws"] == [{"tensor": "draws/0.pt", "shape": [64, 2], "function": "plot_generated_samples",
                               "drawn_with": "torch.randn", "module": "Sequential"}]
    z = torch.load(run.artifacts / "draws" / "0.pt", weights_only=True)
    assert z.shape == (64, 2) and z.dtype == torch.float32


def test_the_student_page_captions_each_figure_with_its_source_and_cell_in_number_order(tmp_path):
    from harness.artifacts import PNG_SIGNATURE
    from harness.models import ExecutionResult, GradeReport, SandboxResult
    from harness.reporting import render_student

    artifacts = tmp_path / "artifacts"
    (artifacts / "figures").mkdir(parents=True)
    for number in (0, 2, 10):
        (artifacts / "figures" / f"{number}.png").write_bytes(PNG_SIGNATURE + bytes([number]) * 16)
    run = {"format": 1, "source": "ae.ipynb", "kind": "notebook", "cells_total": 9, "cells_run": 9, "errors": [],
           "figure_cells": {"figures/0.png": 1, "figures/2.png": 3, "figures/10.png": 8}}
    (artifacts / "run.json").write_text(json.dumps(run))
    sandbox = SandboxResult(verdict="ok", message="exit code 0", returncode=0, wall_s=1.0, cpu_s=1.0,
                            peak_memory_bytes=0, stdout="", stderr="", isolated=True)
    execution = ExecutionResult(source="ae.ipynb", sandbox=sandbox, cells_run=9, cells_total=9, artifacts_dir=artifacts)
    report = GradeReport(student="ann", assignment="dl2025-a2", content_hash="0" * 64, rubric_hash="1" * 64,
                         profile="fast", tasks=(), executions=(execution,))
    page = render_student(report, tmp_path / "out", "DL 2025 A2").read_text()
    captions = [line.split("<figcaption>")[1].split("</figcaption>")[0] for line in page.split("<figure")[1:]]
    assert captions == ["ae.ipynb, cell 2: figure 1", "ae.ipynb, cell 4: figure 3", "ae.ipynb, cell 9: figure 11"]
    copied = tmp_path / "out" / "students" / "ann" / "figures" / "02-ae.png"
    assert copied.read_bytes() == PNG_SIGNATURE + bytes([10]) * 16  # 10.png comes last, not between 0 and 2
