"""The words every renderer shares: verdicts in order, what each exit code means, the word for a
missing value. One place, so the terminal, HTML, Markdown, JUnit and the review never disagree."""
from __future__ import annotations

from typing import get_args

from envcheck.model import ABSENT, Verdict

VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
"""Best to worst: IDENTICAL, PASS, WARN, FAIL, ERROR."""
VERDICT_RANK: dict[str, int] = {verdict: rank for rank, verdict in enumerate(VERDICTS)}
EXIT_MEANING = {0: "matched the golden within policy", 1: "drift: at least one target failed the policy",
                3: "could not decide: at least one target could not be checked"}

__all__ = ["ABSENT", "EXIT_MEANING", "VERDICTS", "VERDICT_RANK"]
