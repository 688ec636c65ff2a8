"""`python -m envcheck` runs the command-line interface."""
from envcheck.cli import run

if __name__ == "__main__":  # (a worker process of a large review imports this module again: it must not run)
    run()
