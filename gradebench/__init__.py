"""Check your work from inside your notebook, before you hand it in.

.. code-block:: python

    import gradebench
    gradebench.check("cnn")                                # a *.gbundle next to the notebook, or $GRADEBENCH_BUNDLE
    gradebench.check("cnn", bundle="dl2025-a2.gbundle")    # or name your course's self-check bundle

This checks the objects of the running kernel (the model you trained, your loss function...) with the task's
checks, as grading would judge them: the grader's probe records them into a temporary folder, and the checks
run in a separate process on those records. It is not a clean run: grading runs your notebook from the top,
as ``gradebench check --bundle dl2025-a2.gbundle CNNMNIST.ipynb`` does.
"""

from gradebench.live import CheckFailed, SelfCheck, check

__all__ = ["CheckFailed", "SelfCheck", "check"]
