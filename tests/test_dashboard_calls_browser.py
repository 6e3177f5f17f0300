"""The call search and a call's page laid out by a real headless Chromium
at 390 px wide: nothing wider than the screen.

Headless Chromium's window is at least 500 px wide, so each page is shown
in a 390 px frame; a script in the frame's parent reports the page's
scroll width and the elements that pass its right edge.  Screenshots are
kept in ``test-output/dashboard-calls-*.png``.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest
from test_dashboard_calls import CallPages, played_log
from test_web import CA1

ROOT = Path(__file__).parent.parent
CHROMIUM = "/usr/bin/chromium"
WIDTH = 390
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--allow-file-access-from-files", "--window-size=500,1600"]
BROWSER_TIMEOUT = 90

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                reason=f"{CHROMIUM} is missing: install Chromium to run it")

FRAME = """<html><body style="margin:0"><iframe id="page" src="{page}" width="{width}"
height="1600" style="border:0" onload="var doc = this.contentDocument;
var wide = [...doc.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > {width}.5)
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : ''));
document.title = 'width=' + doc.documentElement.scrollWidth + ' wide=' + wide.join(',');">
</iframe></body></html>"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    return CallPages(played_log(tmp_path_factory.mktemp("calls_browser")))


def laid_out(folder: Path, name: str, html: str) -> str:
    """The frame's report on ``html`` at :data:`WIDTH` px; a screenshot is kept."""
    (folder / f"{name}.html").write_text(html)
    frame = folder / f"{name}-frame.html"
    frame.write_text(FRAME.format(page=f"{name}.html", width=WIDTH))
    dom = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", frame.as_uri()], capture_output=True,
                         text=True, timeout=BROWSER_TIMEOUT, check=False).stdout
    shots = ROOT / "test-output"
    shots.mkdir(exist_ok=True)
    subprocess.run([CHROMIUM, *FLAGS, f"--screenshot={shots / f'dashboard-calls-{name}.png'}",
                    frame.as_uri()], capture_output=True, timeout=BROWSER_TIMEOUT, check=False)
    found = re.search(r"<title>(.*?)</title>", dom)
    assert found, dom[-2000:]
    return found.group(1)


@pytest.mark.parametrize("name, path", [
    ("search", "/dashboard/calls"),
    ("call", f"/dashboard/calls/{CA1}?lang=fr"),
])
def test_the_call_pages_fit_390_px_without_sideways_scrolling(pages, tmp_path, name, path):
    code, html = pages.request("GET", path)
    assert code == 200
    assert laid_out(tmp_path, name, html) == f"width={WIDTH} wide="
