"""`python -m envcheck_probe` (the zipapp's own entry point calls cli.run the same way)."""
from .cli import run

if __name__ == "__main__":
    run()
