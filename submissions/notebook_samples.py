"""Write generated notebook samples to their folders (shared by the make_*_samples.py generators)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import nbformat


def write_samples(here: Path, samples: Mapping[str, Mapping[str, nbformat.NotebookNode]]) -> None:
    """Write ``samples`` (sample folder -> notebook name -> notebook) under ``here``, validated.

    A notebook a sample no longer has is removed, so a regenerated folder holds exactly what the
    generator says.
    """
    for sample, files in samples.items():
        folder = here / sample
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.ipynb"):
            if stale.name not in files:
                stale.unlink()
        for name, nb in files.items():
            nbformat.validate(nb)
            nbformat.write(nb, folder / name)
    print(f"wrote {len(samples)} samples under {here}")
