"""Kept only for callers that still import `load_fleet` from here: the review is now envcheck.review.

`load_fleet(paths)` is `envcheck.review.review(paths)`, whose Review the fleet renderers take. Delete this
module once nothing imports it (tests/test_schemas.py, tests/report/test_renderers.py,
tests/report/test_html_browser.py import `envcheck.review.review` instead).
"""
from envcheck.review import review as load_fleet

__all__ = ["load_fleet"]
