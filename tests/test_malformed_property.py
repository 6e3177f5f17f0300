"""Property: no request, however malformed, gets a 5xx.  Hypothesis throws
bad methods, paths, identifiers, numbers in Unicode digits, control
characters, huge fields, forged signatures and content types at every
resource of the server in memory; each answer is 2xx or 3xx, or a 4xx
whose body is one line of plain text, and a refused request writes
nothing."""

from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_web import BASE, CA1, TOKEN, Server
from treq.testing import StubTreq

from ivr.providers.twilio.webhook_fields import FIELDS
from ivr.server.dashboard import DashboardResource, InlineReader
from ivr.server.web import build_root

DASHBOARD_TOKEN = "a-dashboard-token-of-24-chars"
#: Bounded, so the suite stays quick; tools/fuzz_webhooks.py sends many more.
EXAMPLES = 250

NASTY_TEXT = st.one_of(
    st.sampled_from(["", " ", "\x00", "CA1", CA1, "CA" + "g" * 32, "²", "١٢٣", "１", "9" * 25,
                     "-1", "0x10", "1e9", "completed", "hangup", "a\r\nb", "\x1b[2J", "\ufffe",
                     "é" * 40, "+33612345678", "<Say>x</Say>", "%", "&", "="]),
    st.text(max_size=40),
    st.text(alphabet=st.characters(max_codepoint=0x1f), max_size=8),
    st.integers(min_value=0, max_value=200_000).map(lambda n: "x" * n),
)
FIELD_NAMES = st.one_of(st.sampled_from(sorted(FIELDS)), st.text(max_size=12))
FORMS = st.dictionaries(FIELD_NAMES, NASTY_TEXT, max_size=8).map(
    lambda form: {"CallSid": CA1, **form} if len(form) % 2 else form)
RAW_BODIES = st.one_of(st.binary(max_size=300), FORMS.map(lambda f: urlencode(f).encode()),
                       FORMS.map(lambda f: urlencode(f).encode()[:-3]))  # truncated
PATHS = st.one_of(
    st.sampled_from(["/voice/post_sale", "/voice/post_sale?turn=1", "/voice/post_sale?turn=1&hold=1",
                     "/voice/nosuch", "/voice/", "/voice/a/b", "/status", "/whisper",
                     "/whisper?X-IVR-Reason=order_status&X-IVR-Call=" + CA1, "/healthz", "/metrics",
                     "/calls/" + CA1, "/calls/", "/dashboard", "/dashboard?since=2026-13-45", "/",
                     "/nothing", "/voice/post_sale?turn=%C2%B2", "/status?x=%00"]),
    st.tuples(st.sampled_from(["/voice/", "/calls/", "/whisper?X-IVR-Reason=", "/dashboard?flow=",
                               "/voice/post_sale?turn="]),
              st.binary(max_size=30)).map(lambda p: p[0] + quote(p[1])),
)
METHODS = st.one_of(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]),
                    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ-_~!", min_size=1, max_size=10))
HEADER_BYTES = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
                                          .replace(b"\x00", b""))
HEADERS = st.fixed_dictionaries({}, optional={
    "Content-Type": st.one_of(st.sampled_from([
        b"application/x-www-form-urlencoded", b"application/x-www-form-urlencoded; charset=utf-8",
        b"application/json", b"text/plain", b"multipart/form-data; boundary=x", b""]), HEADER_BYTES),
    "X-Twilio-Signature": st.one_of(HEADER_BYTES, st.just(b"A" * 28), st.just(b"\xff\xfe")),
    "Authorization": st.one_of(HEADER_BYTES, st.just(f"Bearer {DASHBOARD_TOKEN}".encode()),
                               st.just(b"Basic \xff")),
    "Host": HEADER_BYTES,
    "X-IVR-Simulated-Time": st.one_of(HEADER_BYTES, st.just(b"2026-11-24T10:00:00")),
})


def written(server) -> tuple:
    db = server.store.db
    return tuple(db.execute(f"SELECT COUNT(*) FROM [{table}]").fetchone()[0]
                 for table in ("calls", "call_state", "node_events", "status_events",
                               "flow_versions"))


@pytest.fixture(scope="module", params=[None, TOKEN], ids=["unsigned", "signed"])
def server(request, tmp_path_factory):
    token = request.param
    server = Server(tmp_path_factory.mktemp("fuzz"), token=token)
    dashboard = DashboardResource(DASHBOARD_TOKEN, InlineReader(server.store.db), server.clock,
                                  registry=server.registry)
    server.http = StubTreq(build_root(server.handler, server.registry, auth_token=token,
                                      public_url=BASE if token else None, simulated_clock=True,
                                      dashboard=dashboard, dashboard_token=DASHBOARD_TOKEN))
    server.turn(0, sid="CA" + "0" * 32)  # a call in progress that requests may hit
    return server


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(method=METHODS, path=PATHS, headers=HEADERS, body=RAW_BODIES)
def test_no_request_gets_a_5xx_and_refusals_are_one_line_and_write_nothing(
        server, method, path, headers, body):
    before = written(server)
    code, response_headers, content = server.request(method, path, body, headers)
    assert code < 500, (method, path, headers, body[:200], content[:300])
    if code >= 400:
        assert written(server) == before, (method, path, code, content)
        assert response_headers.getRawHeaders(b"content-type") == [b"text/plain; charset=utf-8"]
        if method != "HEAD":
            assert content.endswith(b"\n") and content.count(b"\n") == 1, content
            assert b"Traceback" not in content and b"<html" not in content.lower()
    server.clock.advance(5)  # let any held turn finish before the next example
    server.http.flush()
