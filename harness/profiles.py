"""The profiles, ``fast`` and ``full``: one table for grading and for training the references.

Grading reads how many hidden images the probes evaluate and the default wall-clock limit of a run;
``gradebench calibrate`` (:mod:`harness.calibrate`) reads how much data and how many epochs each
reference task trains on. Standard library only: choosing a profile imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """What a profile grants: evaluation images and time limits when grading, data and epochs when training."""

    name: str
    eval_images: int | None
    """Hidden images the probes evaluate when grading (None: all)."""
    default_wall_s: float
    """Default wall-clock limit of one sandboxed run, when neither the rubric nor the command line sets one."""
    max_train: int | None
    """Training images per dataset at most (None: every prepared image)."""
    max_eval: int | None
    """Test and hidden images per dataset at most (None: all)."""
    classifier_epochs: int
    """MNIST feed-forward nets, the CNN and the two mistake baselines, trained with the course template's
    recipe (``reference.training.DL2025_TEMPLATE``: 4 epochs in both profiles, as the template trains)."""
    autoencoder_latents: tuple[int, ...]
    """Latent sizes of the fully connected MNIST autoencoder sweep (dl2025-a2 task 2.4)."""
    autoencoder_epochs: int
    autoencoder_train_images: int | None
    """Training images per model of the sweep (None: every training image the profile allows)."""
    vae_epochs: int
    conv_autoencoder_epochs: int
    """idl-ex2 Q1 and Q3 (the decoder on the classifier's encoder)."""
    conv_classifier_epochs: int
    """idl-ex2 Q2."""
    few_labels_epochs: int
    """idl-ex2 Q4, Q5 and the frozen-encoder transfer, on the first 100 training images."""
    curve_eval_images: int
    """Test images scored after every epoch of the 100-label tasks (the over-fitting curves)."""
    signs_epochs: int
    fashion_per_class: int
    """FashionMNIST training images per class for the MLE sheet's autoencoders (the sheet: 1,000)."""
    fashion_conv_epochs: int
    pca_ae_epochs: int


TEMPLATE_EPOCHS = 4
"""Epochs of the course template's classifier recipe (``reference.training.DL2025_TEMPLATE.epochs``; a test
checks that they agree): kept here so that reading a profile does not import torch."""

PROFILES: dict[str, Profile] = {
    "fast": Profile(
        name="fast",
        eval_images=1000,
        default_wall_s=300.0,
        max_train=6_000,
        max_eval=2_000,
        classifier_epochs=TEMPLATE_EPOCHS,
        autoencoder_latents=(2, 5, 10, 20),
        autoencoder_epochs=3,
        autoencoder_train_images=None,
        vae_epochs=2,
        conv_autoencoder_epochs=3,
        conv_classifier_epochs=1,
        few_labels_epochs=15,
        curve_eval_images=500,
        signs_epochs=5,
        fashion_per_class=100,
        fashion_conv_epochs=1,
        pca_ae_epochs=10,
    ),
    "full": Profile(
        name="full",
        eval_images=None,
        default_wall_s=900.0,
        max_train=None,
        max_eval=None,
        classifier_epochs=TEMPLATE_EPOCHS,
        autoencoder_latents=tuple(range(2, 21)),
        autoencoder_epochs=2,
        autoencoder_train_images=30_000,
        vae_epochs=3,
        conv_autoencoder_epochs=2,
        conv_classifier_epochs=2,
        few_labels_epochs=50,
        curve_eval_images=2_000,
        signs_epochs=30,
        fashion_per_class=500,
        fashion_conv_epochs=2,
        pca_ae_epochs=60,
    ),
}
"""The profiles by name: ``fast`` (subsets, few epochs, 1,000 evaluation images: tests and quick checks) and
``full`` (every prepared image)."""
