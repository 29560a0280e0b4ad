"""The only harness code that runs inside the sandbox, in the student's own process.

``bootstrap.install`` prepares the process before the student's first line; ``probe.run``
inspects what the student's code left behind and writes the artifacts (ARTIFACTS.md);
``figures`` saves plots as PNG files. The host reads the artifacts with :mod:`harness.artifacts`.
"""
