"""The harness's own errors.

These describe faults of the harness or of its inputs (a bad data folder, an
invalid rubric), never a student's mistake: a student's mistake is a failed
check, reported in a grade report.
"""


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class DataError(HarnessError):
    """A dataset could not be prepared or loaded.

    The message names the file (or folder) and says what is wrong with it, e.g.
    ``MNIST/raw/train-images-idx3-ubyte: magic number 2049, expected 2051 (an
    images file)``.
    """


class DownloadUnavailable(DataError):
    """A dataset could not be downloaded (no network, or no public source)."""


class LoadError(HarnessError):
    """A path given to the harness cannot be read as submissions at all (it does not exist, say).

    A single unreadable submission inside a batch is not an error: it becomes a
    ``LoadFailure`` verdict for that student and the batch goes on.
    """


class RubricError(HarnessError):
    """A rubric file is invalid; the message names the file, the field and the reason."""


class SandboxError(HarnessError):
    """The sandbox cannot run anything (bubblewrap missing or broken, cgroups unusable when required)."""


class StoreError(HarnessError):
    """The results store cannot be opened or written."""
