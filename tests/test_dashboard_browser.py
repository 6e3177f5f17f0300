"""The dashboard in a real headless Chromium, served by a real server process.

The server is ``ivr-serve`` on 127.0.0.1 (an ephemeral port) over a log of
known traffic, with its token in ``IVR_DASHBOARD_TOKEN``.  Chromium loads
the page with the token as the Basic password in the URL (it answers the
401 challenge with it), and ``--dump-dom`` gives the DOM it built, whose
figures are checked against :mod:`ivr.analytics` on the same file.

The layout is checked in the same browser driven over the DevTools
protocol on a pipe (:mod:`chromium_pipe`), at 1,400 and 390 px wide, in
French and in English: nothing but the flow drawing and the tables (each in
its own scrolling box) is wider than the window, the cards do not overlap,
and the drawing's text is at least 11 px on screen.  A screenshot of each
is kept in ``test-output/dashboard-<lang>-<width>.png``.
"""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chromium_pipe import FLAGS, Browser
from dashboard_support import Page, expected, insert_traffic
from test_dashboard import Dashboard

from ivr.reports import analytics, graph_dot
from ivr.server.registry import FlowRegistry
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).parent.parent
CHROMIUM = "/usr/bin/chromium"
TOKEN = "browser-test-token-0123456789"
PERIOD = "since=2026-11-18&until=2026-11-24&lang=en"
WEEK = analytics.Filters(since="2026-11-18", until="2026-11-25", flow="post_sale")
OUTPUT = ROOT / "test-output"
BROWSER_TIMEOUT = 90
SERVER_START_TIMEOUT = 30

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is missing: install Chromium (apt-get install chromium) to run the "
           f"dashboard in a real browser")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server process on a log of known traffic: (base URL, calls, db path, log path)."""
    folder = tmp_path_factory.mktemp("dashboard-server")
    db_path = folder / "ivr.db"
    store = CallStore.open(db_path)
    registry = FlowRegistry(ROOT / "flows", ROOT / "prompts", store)
    registry.reload()
    calls = insert_traffic(store.db, registry.current("post_sale"))
    store.close()
    log_path = folder / "server.log"
    env = {**os.environ, "IVR_DASHBOARD_TOKEN": TOKEN}
    env.pop("TWILIO_AUTH_TOKEN", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "from ivr.server.tap import main; main()", "--db", str(db_path),
             "--flows", str(ROOT / "flows"), "--prompts", str(ROOT / "prompts"),
             "--listen", "tcp:0:interface=127.0.0.1"],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = _wait_for_port(process, log_path)
        yield f"127.0.0.1:{port}", calls, db_path, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_port(process, log_path) -> int:
    """The port the server logs once it listens (it was asked for any free one)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        match = re.search(r"Site starting on (\d+)", log_path.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.1)
    pytest.fail(f"the server did not start:\n{log_path.read_text(errors='replace')}")


def chromium(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``url`` with a fresh profile, bounded in time."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    try:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url],
                              capture_output=True, timeout=BROWSER_TIMEOUT, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def dom(tmp_path, url: str) -> str:
    result = chromium(tmp_path, url, "--dump-dom")
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result.stdout.decode("utf-8")


def test_chromium_shows_the_analytics_figures_of_the_known_traffic(server, tmp_path):
    address, calls, db_path, _log = server
    page = Page(dom(tmp_path, f"http://ops:{TOKEN}@{address}/dashboard?{PERIOD}"))
    db = analytics.open_report_db(db_path)
    figures = analytics.summary(db, WEEK)[0]
    known = expected(calls)
    assert int(page.value("calls")) == figures["calls"] == known["calls"]
    assert page.text("calls") == "73"
    assert float(page.value("deflection-rate")) == figures["deflection_rate"]
    assert page.text("deflection-rate") == "60.3%"
    assert float(page.value("repeat-adjusted-deflection-rate")) == figures[
        "repeat_adjusted_deflection_rate"] == pytest.approx(known["repeat_adjusted_deflection_rate"])
    assert page.text("repeat-adjusted-deflection-rate") == "52.1%"
    assert page.value("cost-saved") == str(figures["cost_saved"])
    assert page.text("cost-saved") == "€112.63"
    assert float(page.value("avg-ivr-time")) == figures["avg_ivr_seconds"]
    # The charts and the graph are in the DOM the browser built.
    days = {c["data-x"]: float(c["data-value"]) for c in page.find("circle", series="deflection_rate")}
    assert days == {row["day"]: row["deflection_rate"] for row in analytics.over_time(db, WEEK)}
    funnel = {row["node"]: row for row in analytics.funnel(db, "post_sale", None, WEEK)}
    boxes = {e["data-node"]: e for e in page.nodes if e["tag"] == "g"}
    assert int(boxes["main_menu"]["data-reached"]) == funnel["main_menu"]["reached"] == 73
    assert int(boxes["main_menu"]["data-dropped"]) == funnel["main_menu"]["dropped"]
    db.close()


def test_chromium_without_the_token_gets_no_figures(server, tmp_path):
    address, _calls, _db, log_path = server
    for url in (f"http://{address}/dashboard?{PERIOD}",
                f"http://ops:wrong-token-0123456789@{address}/dashboard?{PERIOD}"):
        page = Page(dom(tmp_path, url))  # headless, the 401 ends with an empty document
        assert "calls" not in page.by_id and not page.find("circle")
    log = log_path.read_text(errors="replace")
    assert "dashboard: no credentials from 127.0.0.1" in log
    assert "dashboard: wrong credentials from 127.0.0.1" in log
    assert TOKEN not in log and "wrong-token-0123456789" not in log


# -- the layout at a wide screen's and a phone's width ------------------------------

#: Measured in the page: the window's width, the page's, every element wider
#: than the window outside a box that scrolls sideways, overlapping cards,
#: and the flow drawing's text size on screen (its font size times the scale
#: the drawing is shown at).
MEASURE = """(() => {
  const root = document.documentElement, width = root.clientWidth;
  const scrolls = el => el !== root && el !== document.body
    && ['auto', 'scroll', 'hidden'].includes(getComputedStyle(el).overflowX);
  const inScrollingBox = el => { for (let p = el.parentElement; p; p = p.parentElement)
    if (scrolls(p)) return true; return false; };
  const wider = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if ((r.width || r.height) && !inScrollingBox(el) && (r.left < -0.5 || r.right > width + 0.5))
      wider.push(`${el.tagName.toLowerCase()}#${el.id}.${el.getAttribute('class') || ''}`
                 + ` ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  const cards = [...document.querySelectorAll('.card')].map(c => c.getBoundingClientRect());
  const overlapping = [];
  cards.forEach((a, i) => cards.forEach((b, j) => {
    if (i < j && a.left < b.right - 0.5 && b.left < a.right - 0.5
        && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5) overlapping.push([i, j]); }));
  const texts = [...document.querySelectorAll('.graph svg text')].filter(t => t.textContent.trim())
    .map(t => parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a);
  const graph = document.querySelector('.graph');
  return {width, pageWidth: root.scrollWidth, wider, cards: cards.length, overlapping,
          texts: texts.length, smallestText: Math.min(...texts),
          drawnBy: graph.dataset.drawnBy, lang: root.lang,
          heading: document.querySelector('#timeline h2').textContent};
})()"""
WIDTHS = {1400: 900, 390: 844}  # window sizes: a laptop's, a phone's


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the layout tests, driven over a pipe."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    chromium_log = open(tmp_path_factory.mktemp("chromium-log") / "chromium.log", "wb")
    driven = Browser(CHROMIUM, profile, timeout=BROWSER_TIMEOUT, log=chromium_log)
    yield driven
    driven.close()
    chromium_log.close()


@pytest.mark.parametrize("lang, heading", [("en", "Deflection by day"),
                                           ("fr", "Déflexion par jour")])
@pytest.mark.parametrize("width", WIDTHS)
def test_the_page_fits_the_window_and_its_drawing_is_readable(server, browser, width, lang,
                                                              heading):
    address, _calls, _db, log_path = server
    browser.open(f"http://{address}/dashboard?{PERIOD.replace('lang=en', 'lang=' + lang)}",
                 width=width, height=WIDTHS[width],
                 headers={"Authorization": f"Bearer {TOKEN}"})
    seen = browser.evaluate(MEASURE)
    assert (seen["lang"], seen["heading"]) == (lang, heading)
    assert seen["width"] == width
    assert seen["wider"] == [] and seen["pageWidth"] == width, seen["wider"]
    assert seen["cards"] == 6 and seen["overlapping"] == [], seen["overlapping"]
    assert seen["drawnBy"] == ("dot" if shutil.which("dot") else "own")
    assert seen["texts"] > 50 and seen["smallestText"] >= 11 - 0.01, seen["smallestText"]

    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / f"dashboard-{lang}-{width}.png"
    shot.unlink(missing_ok=True)
    size = browser.screenshot(shot, width)
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == size and size[1] > WIDTHS[width] // 2
    assert shot.stat().st_size > 50_000  # a drawn page, not a blank one
    assert TOKEN not in log_path.read_text(errors="replace")
    print(f"screenshot: {shot} ({size[0]} x {size[1]} px)")


# -- the drawing opens on the flow ------------------------------------------------------

#: Where the entry node is seen in the drawing's box when the page opens,
#: in px from the box's visible top-left corner, and the box's visible size.
ENTRY_SEEN = """(name => {
  const graph = document.querySelector('.graph'), box = graph.getBoundingClientRect();
  const node = graph.querySelector(`g[data-node="${name}"]`).getBoundingClientRect();
  const left = box.left + graph.clientLeft, top = box.top + graph.clientTop;
  return {drawnBy: graph.dataset.drawnBy, width: graph.clientWidth, height: graph.clientHeight,
          left: node.left - left, right: node.right - left, top: node.top - top,
          bottom: node.bottom - top};
})(%s)"""


@pytest.fixture(scope="module")
def own_layout_page(tmp_path_factory):
    """The dashboard drawn without Graphviz (the own layout), saved as a file."""
    patch = pytest.MonkeyPatch()
    patch.setattr(graph_dot.shutil, "which", lambda _name: None)
    try:
        dash = Dashboard(token=TOKEN)
        code, _headers, body = dash.get(f"/dashboard?{PERIOD}",
                                        {"Authorization": f"Bearer {TOKEN}"})
    finally:
        patch.undo()
    assert code == 200, body
    page = tmp_path_factory.mktemp("own-layout") / "dashboard.html"
    page.write_text(body, encoding="utf-8")
    return page, dash.flow.start


@pytest.mark.parametrize("layout", ["server", "own"])
@pytest.mark.parametrize("width", WIDTHS)
def test_the_drawing_opens_on_the_flow_s_entry_node(server, own_layout_page, browser, width,
                                                     layout):
    page, entry = own_layout_page  # the entry node of the flow both pages draw
    if layout == "own":
        browser.open(page.as_uri(), width=width, height=WIDTHS[width], headers={})
        drawn_by = "own"
    else:
        browser.open(f"http://{server[0]}/dashboard?{PERIOD}", width=width, height=WIDTHS[width],
                     headers={"Authorization": f"Bearer {TOKEN}"})
        drawn_by = "dot" if shutil.which("dot") else "own"
    seen = browser.evaluate(ENTRY_SEEN % json.dumps(entry))
    assert seen["drawnBy"] == drawn_by
    assert 0 <= seen["left"] and seen["right"] <= seen["width"], seen
    assert 0 <= seen["top"] and seen["bottom"] <= seen["height"], seen
