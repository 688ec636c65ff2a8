"""`python -m envcheck` runs the command-line interface."""
import sys

from envcheck.cli import main

sys.exit(main())
