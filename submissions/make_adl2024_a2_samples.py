"""Write the adl2024-a2 sample submissions as notebooks: `python submissions/make_adl2024_a2_samples.py`.

Each sample is a folder holding what a student hands in: autoencoders.ipynb (tasks 1-3: the
autoencoder run three times, the PCA baseline, reconstruction error against dim3) and vae.ipynb
(task 4). The notebooks come from ``autoencoder_notebooks.py``, shared with dl2025-a2 Part 2;
here PCA encodes with adl2024-a2's equation (1), alpha_i = (x - mu) . v_i. Notebooks are written
without outputs and with stable cell ids.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from notebook_samples import write_samples

from autoencoder_notebooks import (
    AE_IMPORTS,
    PCA_ENCODE,
    VAE_IMPORTS,
    VAE_PLOT_GENERATED_UNIFORM,
    VAE_SAMPLE_UNIFORM,
    autoencoders,
    autoencoders_different,
    vae,
    vae_different,
)

HERE = Path(__file__).parent / "adl2024-a2"

COLAB = """\
from google.colab import drive
drive.mount('/content/drive')
"""
"""A first cell written for Google Colab: outside Colab it raises, and every later cell misses its imports."""

SAMPLES: dict[str, dict[str, nbformat.NotebookNode]] = {
    # The notebooks as the text asks for them: full automatic marks.
    "reference": {"autoencoders.ipynb": autoencoders("adl2024"), "vae.ipynb": vae()},
    # The same work by another hand: class AE with encode/decode, training in a function, PCA from
    # np.linalg.eigh, a grid of subplots, the VAE loss returning its terms. Full automatic marks too.
    "different": {"autoencoders.ipynb": autoencoders_different("adl2024"), "vae.ipynb": vae_different()},
    # PCA encoded with dl2025-a2's equation, alpha_i = (x - mu) . sqrt(lambda_i) v_i: the wrong text's formula.
    "scaled_formula": {
        "autoencoders.ipynb": autoencoders("adl2024", pca_encode=PCA_ENCODE["dl2025"]),
        "vae.ipynb": vae(),
    },
    # The VAE's latent space sampled uniformly (torch.rand) instead of from the prior N(0, I).
    "uniform_z": {
        "autoencoders.ipynb": autoencoders("adl2024"),
        "vae.ipynb": vae(sample=VAE_SAMPLE_UNIFORM, plot_generated=VAE_PLOT_GENERATED_UNIFORM),
    },
    # Both notebooks start with a Colab-only cell that raises: nothing after it can run.
    "colab_only": {
        "autoencoders.ipynb": autoencoders("adl2024", imports=COLAB + AE_IMPORTS),
        "vae.ipynb": vae(imports=COLAB + VAE_IMPORTS),
    },
}


def main() -> None:
    """Write every sample folder next to this script."""
    write_samples(HERE, SAMPLES)


if __name__ == "__main__":
    main()
