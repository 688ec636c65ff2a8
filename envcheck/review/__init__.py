"""The fleet review: many JSON reports (one per factory per day…) read once into pandas tables and viewed.

    find.py     which files are candidate reports (special and oversized files skipped, dot-folders not searched)
    read.py     one file's bytes → a report that passed envcheck/schemas/report-1.schema.json, or why not
    load.py     find → read → drop duplicates, future and pre---since reports → index, each file read once
    index.py    the index: one DataFrame row per report × target, decisive differences, newest evidence
    views.py    pandas views of the index: per golden, latest runs, matrix, classes, attribution, trend, images per
                tag, CSV table
    service.py  `review(paths, since) -> Review`: all of the above, what the renderers are given

pandas lives in this package only. The renderers (terminal, HTML, CSV) stay in envcheck/report/ with every
other output format: they share its templates, page policy and vocabulary, and read the Review's views
without loading a file or computing a table of their own.
"""
from envcheck.review.service import GoldenReview, Review, review

__all__ = ["GoldenReview", "Review", "review"]
