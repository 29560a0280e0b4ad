"""The bootstrap in a fresh interpreter: torchvision reads the prepared data whatever root is given, plots are saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.probes.figures import reserve_figure_path, write_png

STUDENT_CODE = """
import json, os, sys
from harness.probes import bootstrap
bootstrap.install(json.loads(sys.argv[1]))
import torch
from torchvision import datasets, transforms
test = datasets.MNIST("weird/root", train=False, download=True, transform=transforms.ToTensor())
train = datasets.MNIST("../elsewhere", True, None, None, True)  # download=True given positionally
import matplotlib.pyplot as plt
plt.plot([1, 2, 3])
plt.show()
plt.figure()
plt.plot([3, 2, 1])
bootstrap_report = {
    "test": len(test), "train": len(train), "root": str(test.root), "image": list(test[0][0].shape),
    "created": [p for p in ("weird", "../elsewhere") if os.path.exists(p)],
    "threads": torch.get_num_threads(), "wandb": os.environ["WANDB_MODE"], "hub": os.environ["HF_HUB_OFFLINE"],
    "figures": sorted(os.listdir(os.environ["GRADEBENCH_FIGURES_DIR"])), "backend": plt.get_backend(),
}
print(json.dumps(bootstrap_report))
"""



def test_any_mnist_root_reads_the_prepared_files_without_downloading(tmp_path, small_mnist):
    workdir = tmp_path / "student"
    workdir.mkdir()
    config = {"artifacts": str(tmp_path / "artifacts"), "datasets": ["mnist"], "data_root": str(small_mnist),
              "threads": 1}
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", STUDENT_CODE, json.dumps(config)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["test"], report["train"]) == (1_000, 6_000)
    assert report["root"] == str(small_mnist) and report["image"] == [1, 28, 28]
    assert report["created"] == []  # nothing was written where the student pointed
    assert (report["threads"], report["wandb"], report["hub"]) == (1, "disabled", "1")
    assert report["backend"] == "module://harness.probes.mpl_backend"
    assert report["figures"] == ["0.json", "0.png"]  # plt.show() saved the first; the second is still open
    assert (tmp_path / "artifacts" / "figures" / "0.png").read_bytes().startswith(b"\x89PNG")
    [line] = json.loads((tmp_path / "artifacts" / "figures" / "0.json").read_text())["axes"][0]["lines"]
    assert (line["x"], line["y"]) == ([0.0, 1.0, 2.0], [1.0, 2.0, 3.0])


def test_figures_are_numbered_capped_and_must_be_png(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    assert write_png(tmp_path, png) == tmp_path / "0.png"
    assert write_png(tmp_path, b"GIF89a not a png") is None
    (tmp_path / "1.png").write_bytes(png)  # taken meanwhile, e.g. by the kernel
    assert reserve_figure_path(tmp_path) == tmp_path / "2.png"
    assert reserve_figure_path(tmp_path, limit=3) is None


DRAWS = """
import json, sys
from harness.probes import bootstrap
bootstrap.install(json.loads(sys.argv[1]))
import random
import numpy
import torch
print(json.dumps([random.random(), float(numpy.random.rand()), torch.rand(1).item()]))
"""


def _draws(tmp_path, seed):
    config = {"artifacts": str(tmp_path / "artifacts"), "threads": 1, "seed": seed}
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", DRAWS, json.dumps(config)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_rubrics_seed_makes_every_generator_draw_the_same_in_each_run(tmp_path):
    import random

    import numpy
    import torch

    random.seed(7)
    numpy.random.seed(7)
    torch.manual_seed(7)
    expected = [random.random(), float(numpy.random.rand()), torch.rand(1).item()]
    assert _draws(tmp_path, 7) == expected
    assert _draws(tmp_path, 7) == expected


def test_without_a_seed_each_run_draws_afresh(tmp_path):
    first, second = _draws(tmp_path, None), _draws(tmp_path, None)
    assert all(a != b for a, b in zip(first, second))
