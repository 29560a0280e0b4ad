"""Fixed, seeded inputs for the functions a rubric asks the probe to call (sandbox and host alike).

``build(kind)`` returns the same tensors everywhere: on CPU, float32, drawn from a
``torch.Generator`` seeded with ``SEED`` in a fixed order. The probe calls the student's
function on them inside the sandbox; a host check builds them again to compute what the
reference gives on the very same numbers.

Kinds:

``vae_loss``
    ``(recon, x, mu, logvar)`` as the course's ``loss_function(recon_x, x, mu, logvar)`` takes
    them: ``recon`` (16, 784) in [0.01, 0.99] (a decoder's sigmoid output), ``x`` (16, 784) in
    [0, 1) (flattened images), ``mu`` (16, 2) standard normal, ``logvar`` (16, 2) normal with
    standard deviation 0.5.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SEED = 20251121
"""Seed of the generator every kind draws from."""

VAE_BATCH = 16
"""Examples in the ``vae_loss`` batch."""

VAE_PIXELS = 784
"""Values per example (a flattened 28x28 image)."""

VAE_LATENT = 2
"""Latent dimensions of ``mu`` and ``logvar``."""

# Captured at import (the probe imports this module before the student's code runs), so a
# student's monkeypatching of torch cannot change the inputs.
_generator = torch.Generator
_rand = torch.rand
_randn = torch.randn


def _vae_loss() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = _generator(device="cpu").manual_seed(SEED)
    shape = (VAE_BATCH, VAE_PIXELS)
    recon = _rand(shape, generator=generator, dtype=torch.float32) * 0.98 + 0.01  # (16, 784) in [0.01, 0.99]
    x = _rand(shape, generator=generator, dtype=torch.float32)  # (16, 784) in [0, 1)
    mu = _randn((VAE_BATCH, VAE_LATENT), generator=generator, dtype=torch.float32)  # (16, 2)
    logvar = 0.5 * _randn((VAE_BATCH, VAE_LATENT), generator=generator, dtype=torch.float32)  # (16, 2)
    return recon, x, mu, logvar


KINDS: dict[str, Callable[[], tuple[torch.Tensor, ...]]] = {"vae_loss": _vae_loss}
"""Every kind ``build`` knows, by name (``harness.contract.FIXED_INPUT_KINDS`` names them for the rubric)."""


def build(kind: str) -> tuple[torch.Tensor, ...]:
    """The positional arguments of kind ``kind``: fresh tensors, identical on every call and machine."""
    maker = KINDS.get(kind)
    if maker is None:
        raise ValueError(f"no fixed inputs {kind!r}; known: {sorted(KINDS)}")
    return maker()
