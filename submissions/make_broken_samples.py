"""Write the broken sample submissions: `python submissions/make_broken_samples.py`.

Each case is a folder under ``submissions/broken/`` named after what is wrong with it; what a
TA should see for each is asserted in ``tests/test_broken.py``. The crashing notebooks are the
dl2025-a2 reference CNN notebook with one cell added after the model is built, so they stay in
step with the reference. Inputs that must not be committed (a 200 MB notebook, a zip bomb, a
file name that is not UTF-8) are made at test time by :func:`huge_notebook`, :func:`zip_bomb`
and :func:`non_utf8_name`.
"""

from __future__ import annotations

import copy
import json
import os
import zipfile
from pathlib import Path

import nbformat

HERE = Path(__file__).parent / "broken"
REFERENCE_CNN = Path(__file__).parent / "dl2025-a2" / "reference" / "CNNMNIST.ipynb"

NO_MODEL = '''\
"""Question 1.3: the CNN (not written yet)."""

import numpy as np

BATCH_SIZE = 64
weights = np.zeros((10, 800))
print("shape of the last layer:", weights.shape)
'''

NBFORMAT_3 = {
    "metadata": {"name": "CNNMNIST"},
    "nbformat": 3,
    "nbformat_minor": 0,
    "worksheets": [
        {
            "cells": [
                {"cell_type": "code", "collapsed": False, "input": ["import torch"], "language": "python",
                 "metadata": {}, "outputs": []},
            ],
            "metadata": {},
        }
    ],
}


def crashing_notebook(crash: str) -> nbformat.NotebookNode:
    """The reference CNN notebook with a cell running ``crash`` right after the model is built."""
    nb = nbformat.read(REFERENCE_CNN, as_version=4)
    crashed = copy.deepcopy(nb)
    at = next(i for i, cell in enumerate(nb.cells) if cell.source.startswith("model = Net()")) + 1
    crashed.cells.insert(at, nbformat.v4.new_code_cell(crash))
    for index, cell in enumerate(crashed.cells):
        cell["id"] = f"cell-{index}"
    return crashed


def truncated_notebook() -> str:
    """The reference CNN notebook cut off in the middle, as an interrupted save leaves it."""
    text = REFERENCE_CNN.read_text(encoding="utf-8")
    return text[: len(text) // 2]


def write_zip_slip(path: Path) -> None:
    """A zip with the reference CNN notebook and an entry that tries to climb out: ``../../x``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("CNNMNIST.ipynb", REFERENCE_CNN.read_text(encoding="utf-8"))
        archive.writestr("../../x", "written outside the submission\n")


def huge_notebook(path: Path, size: int = 200 * 1024 * 1024) -> Path:
    """A ``size``-byte notebook at ``path``: a valid start, then a sparse hole (takes no disk space)."""
    head = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})[:-1] + ', "padding": "'
    with open(path, "wb") as stream:
        stream.write(head.encode())
        stream.truncate(size)
    return path


def zip_bomb(path: Path, expanded_mib: int = 512, level: int = 1) -> Path:
    """A zip whose one notebook entry inflates to ``expanded_mib`` MiB of zeros (level 1: 1/220 of that; 9: 1/1000)."""
    chunk = b"\0" * (1024 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        with archive.open("CNNMNIST.ipynb", "w", force_zip64=True) as entry:
            for _ in range(expanded_mib):
                entry.write(chunk)
    return path


def non_utf8_name(folder: Path, raw_name: bytes, data: bytes) -> Path:
    """Write ``data`` to a file whose name is the bytes ``raw_name`` (not UTF-8), inside ``folder``."""
    target = os.path.join(os.fsencode(folder), raw_name)
    with open(target, "wb") as stream:
        stream.write(data)
    return Path(os.fsdecode(target))


def main() -> None:
    """Write every committed case under submissions/broken/."""
    cases: dict[str, dict[str, str | nbformat.NotebookNode]] = {
        "invalid_json": {"CNNMNIST.ipynb": truncated_notebook()},
        "nbformat3": {"CNNMNIST.ipynb": json.dumps(NBFORMAT_3, indent=1) + "\n"},
        "empty": {"CNNMNIST.ipynb": ""},
        "kernel_abort": {"CNNMNIST.ipynb": crashing_notebook("import os\nos.abort()")},
        "segfault": {"CNNMNIST.ipynb": crashing_notebook("import ctypes\nctypes.string_at(0)")},
        "no_model": {"CNNMNIST.py": NO_MODEL},
    }
    for case, files in cases.items():
        folder = HERE / case
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            if isinstance(content, str):
                (folder / name).write_text(content, encoding="utf-8")
            else:
                nbformat.write(content, folder / name)
    (HERE / "zip_slip").mkdir(parents=True, exist_ok=True)
    write_zip_slip(HERE / "zip_slip" / "zip_slip.zip")


if __name__ == "__main__":
    main()
