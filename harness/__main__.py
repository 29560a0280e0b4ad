"""`python -m harness` is the `gradebench` command."""

from harness.cli import main

if __name__ == "__main__":
    main()
