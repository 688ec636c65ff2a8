"""The probe's package as targets run it (the zipapp), shared with tests/probe."""
from probe.conftest import probe  # noqa: F401 - a fixture, re-exported for these tests
