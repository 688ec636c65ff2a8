"""Installed-file integrity and start-up code (issue 27): the probe records, findings, review, fixture images."""
