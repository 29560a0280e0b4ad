"""PCA baseline of dl2025-a2 tasks 2.3-2.4 and adl2024-a2 tasks 2-3.

The maths lives in :mod:`harness.pca` (the host's PCA checks need it where no reference code is installed,
e.g. a student's self-check); this module keeps the reference's names for the trainers and tests.
"""

from __future__ import annotations

from harness.pca import (  # noqa: F401  (re-exported)
    Formula,
    encode,
    fit_pca,
    generate,
    principal_angles,
    reconstruct,
    reconstruction_errors,
    scale_pixels,
)
