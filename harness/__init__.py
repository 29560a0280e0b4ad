"""gradebench: automated grading and benchmark harness for deep-learning course assignments."""

import os

__version__ = "0.1.0"

# The host's own linear algebra is small (its checks), and its sandboxes are started with fork from worker
# threads: OpenBLAS stops its worker threads at a fork, and a host check in the middle of a threaded matrix
# product on another thread (pca_curve) was seen to wait for them forever. One BLAS thread on the host, set
# before numpy is imported; the sandboxed runs get their own thread settings (harness.engines.base).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
