"""The HTML pages in a real headless Chromium: they render, the matrix and a histogram are visible in a
screenshot, and the browser makes no network request (every request would reach a recording proxy).
A hostile report (tests/report/conftest.py) runs none of its payloads, with the page's policy and without
it, and shows every payload as text; the policy lets the page's own script run, by its hash."""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import RECORDED_REPORTS, require
from envcheck.review import review
from envcheck.report.fleet_html import render_review_html
from envcheck.report.html import render_html
from envcheck.report.view import build_view
from envcheck.report.html_common import BAR_COLOUR, VERDICT_COLOURS, clip, hash_source

# Keep Chromium's own background traffic (updates, metrics, safe browsing) out of the count.
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
         "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--metrics-recording-only",
         "--disable-extensions", "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate"]
# What Chromium may still ask by itself, whatever the page: its own update, time and sign-in services.
BROWSER_SERVICES = (".google.com", ".googleapis.com", ".gstatic.com")


@pytest.fixture
def recording_proxy():
    """An HTTP proxy on loopback that records every request and answers 404."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self):
            seen.append(f"{self.command} {self.path}")
            self.send_response(404)
            self.end_headers()

        do_GET = do_POST = do_CONNECT = do_HEAD = _record

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def page_requests(seen: list[str]) -> list[str]:
    """Requests not made by Chromium for itself: those can only come from the page."""
    def host(request: str) -> str:
        target = request.split(" ", 1)[1]
        return target.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return [r for r in seen if not host(r).endswith(BROWSER_SERVICES)]


def assert_no_external_references(html: str) -> None:
    """Belt and braces: nothing in the markup points outside the page (the SVG namespace is a name)."""
    for marker in ("http://", "https://", "//"):
        assert html.replace('xmlns="http://www.w3.org/2000/svg"', "").count(marker) == 0, marker


def chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    require(browser is not None, "Debian's chromium package")
    return browser


def screenshot(page: Path, proxy: str, out: Path, height: int = 2400) -> Image.Image:
    subprocess.run([chromium(), *QUIET, f"--proxy-server={proxy}", "--proxy-bypass-list=<-loopback>",
                    f"--window-size=1280,{height}", f"--screenshot={out}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return Image.open(out).convert("RGB")


def pixels_of(image: Image.Image, colour: str, tolerance: int = 6) -> int:
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int(np.all(np.abs(np.asarray(image, dtype=int) - target) <= tolerance, axis=-1).sum())


@pytest.mark.control
def test_control_page_with_an_external_image_is_caught(recording_proxy, tmp_path):
    proxy, seen = recording_proxy
    page = tmp_path / "control.html"
    page.write_text('<html><body><img src="http://envcheck.invalid/pixel.png"></body></html>')
    screenshot(page, proxy, tmp_path / "control.png", height=400)
    assert any("envcheck.invalid" in request for request in page_requests(seen))


def test_run_report_renders_histogram_offline(recorded_reports, recording_proxy, tmp_path):
    proxy, seen = recording_proxy
    page = tmp_path / "report.html"
    page.write_text(render_html(build_view(recorded_reports["chengdu-5-bf16"])))
    image = screenshot(page, proxy, tmp_path / "report.png")
    assert page_requests(seen) == []
    assert_no_external_references(page.read_text())
    assert pixels_of(image, BAR_COLOUR) > 500  # histogram bars
    assert pixels_of(image, VERDICT_COLOURS["FAIL"]) > 50  # the FAIL badge


def test_fleet_review_renders_matrix_offline(recording_proxy, tmp_path):
    proxy, seen = recording_proxy
    bad = tmp_path / "reports" / "truncated.json"
    bad.parent.mkdir()
    bad.write_text('{"schema": "envcheck.report/1", "targ')
    page = tmp_path / "review.html"
    page.write_text(render_review_html(review([RECORDED_REPORTS, bad.parent])))
    image = screenshot(page, proxy, tmp_path / "review.png")
    assert page_requests(seen) == []
    assert_no_external_references(page.read_text())
    for verdict in ("IDENTICAL", "WARN", "FAIL", "ERROR"):
        assert pixels_of(image, VERDICT_COLOURS[verdict]) > 50, verdict
    assert "truncated.json" in page.read_text()


# ------------------------------------------------------------------------------- hostile data

# Appended to a page under test, after the page's own script: a moment later it clicks the first table
# header (the page's script then marks it sorted) and records whether any payload set window.__pwned.
CHECK = ("setTimeout(function () { var th = document.querySelector('table.sortable th'); if (th) { th.click(); } "
         "document.documentElement.setAttribute('data-sorted', th && th.dataset.dir ? th.dataset.dir : 'no'); "
         "document.documentElement.setAttribute('data-pwned', String(window.__pwned)); }, 300);")
ELEMENTS = {"html", "head", "meta", "title", "style", "script", "body", "h1", "h2", "h3", "p", "b", "br", "code", "a",
            "input", "table", "thead", "tbody", "tr", "th", "td", "section", "span", "details", "summary", "pre",
            "svg", "text", "line", "rect"}
CSP_META = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')


def with_check(page: str, policy: bool) -> str:
    """The page plus CHECK: under the page's policy (which then also allows CHECK by its hash), or with
    the policy removed, so that only escaping stands between a payload and the browser."""
    return with_script(page, CHECK, policy)


def with_script(page: str, script: str, policy: bool = True) -> str:
    """The page plus the harness's own `script` after the page's: allowed by its hash added to the page's
    policy, or with the policy removed. Only the harness adds a script; the page keeps its one."""
    head, end, tail = page.rpartition("</body>")
    page = f"{head}<script>{script}</script>{end}{tail}"
    if policy:
        return page.replace("script-src ", f"script-src {hash_source(script)} ", 1)
    return CSP_META.sub("", page, count=1)


class Dom(HTMLParser):
    """Elements, attributes and text (without script and style) of a page Chromium dumped."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.parts: list[str] = []
        self._raw = 0
        self.feed(dom)
        self.text = "\n".join(self.parts)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._raw += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._raw -= tag in ("script", "style")

    def handle_data(self, data):
        if not self._raw:
            self.parts.append(data)


def load(page: Path, proxy: str) -> tuple[Dom, str, list[str]]:
    """The DOM after the page ran (scripts, timers, image errors), as text and parsed, and the console."""
    result = subprocess.run([chromium(), *QUIET, f"--proxy-server={proxy}", "--proxy-bypass-list=<-loopback>",
                             f"--user-data-dir={page.parent / (page.stem + '-profile')}", "--enable-logging=stderr",
                             "--v=0", "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                            check=True, capture_output=True, text=True, timeout=120)
    return Dom(result.stdout), result.stdout, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


def assert_inert(dom: Dom, dumped: str) -> None:
    """Nothing in the DOM came from data: the two scripts (the page's and CHECK), known elements only,
    no event handler, no link off the page, no markup from a payload; and no payload ran."""
    assert [tag for tag, _ in dom.elements].count("script") == 2
    assert {tag for tag, _ in dom.elements} <= ELEMENTS
    for tag, attributes in dom.elements:
        assert not [name for name in attributes if name.startswith("on")], (tag, attributes)
        if tag == "a":
            assert attributes["href"].startswith("#"), attributes
    assert "<b>bold</b>" not in dumped
    assert dom.elements[0][1]["data-pwned"] == "undefined"


def assert_shown(dom: Dom, values: dict[str, str]) -> None:
    for field, value in values.items():
        # Fingerprint values are clipped in the difference tables, as they always were.
        assert (clip(value) if field.startswith(("diff.golden", "diff.target")) else value) in dom.text, field


@pytest.mark.parametrize("policy", [True, False], ids=["with-policy", "escaping-only"])
def test_hostile_run_report_runs_no_payload_and_shows_it_as_text(hostile, recording_proxy, tmp_path, policy):
    proxy, seen = recording_proxy
    page = tmp_path / "report.html"
    page.write_text(with_check(render_html(build_view(hostile.report)), policy))
    dom, dumped, console = load(page, proxy)
    assert_inert(dom, dumped)
    assert page_requests(seen) == []
    # Image metadata is not part of the page; everything else is, as text.
    assert_shown(dom, {k: v for k, v in hostile.values.items() if not k.startswith("image.")})
    if policy:
        assert dom.elements[0][1]["data-sorted"] == "up"  # the page's own script ran under the policy
        assert not [line for line in console if "Content Security Policy" in line]


@pytest.mark.parametrize("policy", [True, False], ids=["with-policy", "escaping-only"])
def test_hostile_fleet_review_runs_no_payload_and_shows_it_as_text(hostile_fleet, recording_proxy, tmp_path, policy):
    proxy, seen = recording_proxy
    folder, hostile = hostile_fleet
    fleet = review([folder])
    assert fleet.files_read == 1 and len(fleet.skipped) == 1  # the hostile report is read, not skipped
    page = tmp_path / "review.html"
    page.write_text(with_check(render_review_html(fleet), policy))
    dom, dumped, console = load(page, proxy)
    assert_inert(dom, dumped)
    assert page_requests(seen) == []
    not_reviewed = ("image.", "envcheck_version", "golden.path")  # not part of the review
    assert_shown(dom, {k: v for k, v in hostile.values.items() if not k.startswith(not_reviewed)})
    assert '<img src=x onerror="window.__pwned=1">.json' in dom.text  # the skipped file's name
    if policy:
        assert dom.elements[0][1]["data-sorted"] == "up"
        assert not [line for line in console if "Content Security Policy" in line]


@pytest.mark.control
def test_control_page_with_a_raw_payload_is_caught(recording_proxy, tmp_path):
    """The checks above can fail: the same payload written unescaped runs and leaves an element behind."""
    proxy, _ = recording_proxy
    page = tmp_path / "control.html"
    page.write_text(with_check('<html><body><img src=x onerror="window.__pwned=1"></body></html>', policy=False))
    dom, dumped, _ = load(page, proxy)
    assert dom.elements[0][1]["data-pwned"] == "1"
    with pytest.raises(AssertionError):
        assert_inert(dom, dumped)


def test_policy_runs_the_page_script_only_as_hashed(recorded_reports, recording_proxy, tmp_path):
    """One character changed in the inline script and Chromium refuses it: the hash is what allows it."""
    proxy, _ = recording_proxy
    page = tmp_path / "tampered.html"
    rendered = render_html(build_view(recorded_reports["shenzhen-3"]))
    page.write_text(with_check(rendered.replace("th.dataset.dir = up ?", "th.dataset.dir = up  ?", 1), policy=True))
    dom, _, console = load(page, proxy)
    assert dom.elements[0][1]["data-sorted"] == "no"
    assert [line for line in console if "Content Security Policy" in line and "inline script" in line]
