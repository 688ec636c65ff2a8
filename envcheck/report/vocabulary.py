"""The words and colours every renderer shares: verdicts in order and their colours, what each exit code
means, the word for a missing value. One place, so the terminal, HTML, Markdown, JUnit and the review
never disagree."""
from __future__ import annotations

from envcheck.model import ABSENT, VERDICT_RANK, VERDICTS

SEVERITIES = ("fail", "warn", "info")
"""Severities that reach a report, most serious first (`ignore` differences are dropped)."""
EXIT_MEANING = {0: "matched the golden within policy", 1: "drift: at least one target failed the policy",
                3: "could not decide: at least one target could not be checked"}
DASH = "—"
"""The mark for a statistic or name that is not there."""

VERDICT_STYLE = {"IDENTICAL": "bold green", "PASS": "green", "WARN": "bold yellow", "FAIL": "bold red",
                 "ERROR": "bold magenta"}
"""Terminal (rich) style of each verdict."""
VERDICT_COLOURS = {"IDENTICAL": "#1a7f37", "PASS": "#4c9a2a", "WARN": "#b7791f", "FAIL": "#cf222e",
                   "ERROR": "#8250df", None: "#6e7781"}
"""HTML colour of each verdict (None: no verdict)."""
SEVERITY_STYLE = {"fail": "red", "warn": "yellow", "info": "dim"}
STATUS_STYLE = {"identical": "green", "noise": "green", "accepted": "yellow", "drift": "bold red",
                "mismatch": "bold red"}

__all__ = ["ABSENT", "DASH", "EXIT_MEANING", "SEVERITIES", "SEVERITY_STYLE", "STATUS_STYLE", "VERDICTS",
           "VERDICT_COLOURS", "VERDICT_RANK", "VERDICT_STYLE"]
