"""`python -m envcheck` runs the command-line interface."""
import sys

from envcheck.cli import main

if __name__ == "__main__":  # (a worker process of a large review imports this module again: it must not run)
    sys.exit(main())
