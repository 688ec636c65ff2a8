"""Every file format a run report can be written in: one entry each, read by argparse (the --FORMAT
options and their help) and by publishing (which function writes it).

Renderers are imported only when a report is written, so `envcheck --help` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the view pulls in numpy via the model; --help must not
    from envcheck.report.view import ReportView


@dataclass(frozen=True)
class ReportFormat:
    """A report format: its --option, its help, and the function that renders it."""

    name: str
    help: str
    module: str
    function: str
    from_document: bool = False
    """True: renders the JSON dict itself (the JSON report); False: renders the view built from it."""

    def render(self, document: dict[str, Any], view: ReportView) -> str:
        """The report's text in this format."""
        render = getattr(importlib.import_module(self.module), self.function)
        return str(render(document if self.from_document else view))


FORMATS: tuple[ReportFormat, ...] = (
    ReportFormat("html", "write a self-contained HTML report", "envcheck.report.html", "render_html"),
    ReportFormat("junit", "write JUnit XML (a test case per target × check)", "envcheck.report.junit", "render_junit"),
    ReportFormat("markdown", "write a Markdown summary (merge-request comment)", "envcheck.report.markdown",
                 "render_markdown"),
    ReportFormat("metrics", "write Prometheus metrics (node_exporter textfile collector format)",
                 "envcheck.report.metrics", "render_metrics"),
    ReportFormat("sbom", "write a CycloneDX 1.6 JSON SBOM of every target's packages (for CVE scanners)",
                 "envcheck.report.sbom", "render_sbom", from_document=True),
    ReportFormat("json", "also write the JSON report here", "envcheck.report.json", "render_json", from_document=True),
)
"""In the order they are written; JSON last, so it can record that another report could not be written."""
BY_NAME = {fmt.name: fmt for fmt in FORMATS}


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """One `--NAME PATH` option per format."""
    for fmt in FORMATS:
        parser.add_argument(f"--{fmt.name}", type=Path, metavar="PATH", help=fmt.help)


def requested(args: argparse.Namespace) -> list[tuple[Path, ReportFormat]]:
    """(path, format) of every report the command line asked for, in writing order."""
    return [(getattr(args, fmt.name), fmt) for fmt in FORMATS if getattr(args, fmt.name, None)]

