"""The HTML pages in a real headless Chromium: they render, the matrix and a histogram are visible in a
screenshot, and the browser makes no network request (every request would reach a recording proxy)."""
from __future__ import annotations

import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import RECORDED_REPORTS, require
from envcheck.report.fleet import load_fleet
from envcheck.report.fleet_html import render_review_html
from envcheck.report.html import render_html
from envcheck.report.html_common import BAR_COLOUR, VERDICT_COLOURS

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


def screenshot(page: Path, proxy: str, out: Path, height: int = 2400) -> Image.Image:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    require(browser is not None, "Debian's chromium package")
    subprocess.run([browser, *QUIET, f"--proxy-server={proxy}", "--proxy-bypass-list=<-loopback>",
                    f"--window-size=1280,{height}", f"--screenshot={out}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return Image.open(out).convert("RGB")


def pixels_of(image: Image.Image, colour: str, tolerance: int = 6) -> int:
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int(np.all(np.abs(np.asarray(image, dtype=int) - target) <= tolerance, axis=-1).sum())


def test_control_page_with_an_external_image_is_caught(recording_proxy, tmp_path):
    proxy, seen = recording_proxy
    page = tmp_path / "control.html"
    page.write_text('<html><body><img src="http://envcheck.invalid/pixel.png"></body></html>')
    screenshot(page, proxy, tmp_path / "control.png", height=400)
    assert any("envcheck.invalid" in request for request in page_requests(seen))


def test_run_report_renders_histogram_offline(recorded_reports, recording_proxy, tmp_path):
    proxy, seen = recording_proxy
    page = tmp_path / "report.html"
    page.write_text(render_html(recorded_reports["chengdu-5-bf16"]))
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
    page.write_text(render_review_html(load_fleet([RECORDED_REPORTS, bad.parent])))
    image = screenshot(page, proxy, tmp_path / "review.png")
    assert page_requests(seen) == []
    assert_no_external_references(page.read_text())
    for verdict in ("IDENTICAL", "WARN", "FAIL", "ERROR"):
        assert pixels_of(image, VERDICT_COLOURS[verdict]) > 50, verdict
    assert "truncated.json" in page.read_text()
