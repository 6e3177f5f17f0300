"""The README's quick start, as written: ``ivr-serve`` with the demo flow,
then its two ``curl`` commands (the first turn of a call, and the next one
pressing 1), against a real server on 127.0.0.1."""

import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"

#: Seconds the server may take to start, and each request to be answered.
START_TIMEOUT, REQUEST_TIMEOUT = 60, 20


def quick_start_curls() -> list[tuple[str, dict[str, str]]]:
    """The quick start's curl commands: (URL, form fields) of each."""
    section = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(curl .*?)```", section, re.S)
    return [_request_of(block) for block in blocks]


def _request_of(command: str) -> tuple[str, dict[str, str]]:
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:2] == ["curl", "-s"], command
    url, fields, rest = words[2], {}, words[3:]
    while rest:
        flag, value, *rest = rest
        assert flag == "--data-urlencode", f"the test does not know curl's {flag}"
        name, _, field = value.partition("=")
        fields[name] = field
    return url, fields


def test_the_quick_start_has_the_venv_step_and_a_second_terminal():
    section = README.read_text(encoding="utf-8").split("## Quick start", 1)[1]
    assert "python3 -m venv .venv && . .venv/bin/activate\npip install . && ivr-serve\n" in section
    assert "In a second terminal" in section


def test_the_quick_start_curls_play_two_turns_of_one_call(tmp_path):
    curls = quick_start_curls()
    assert [urlsplit(url).path + (f"?{urlsplit(url).query}" if urlsplit(url).query else "")
            for url, _fields in curls] == ["/voice/post_sale", "/voice/post_sale?turn=1"]
    assert curls[0][1]["CallSid"] == curls[1][1]["CallSid"] and curls[1][1]["Digits"] == "1"
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-c", "from ivr.server.tap import main; main()",
             "--listen", "tcp:0:interface=127.0.0.1", "--workers", "1",
             "--db", str(tmp_path / "ivr.db"), "--flows", str(ROOT / "flows"),
             "--prompts", str(ROOT / "prompts")],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        port = _port_from(log, server)
        first, second = (_post(url.replace("127.0.0.1:8080", f"127.0.0.1:{port}"), fields)
                         for url, fields in curls)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert '<Gather' in first and 'action="/voice/post_sale?turn=1"' in first
    assert "votre colis est en route" in first
    assert second.startswith("<?xml") and "<Response>" in second
    assert 'action="/voice/post_sale?turn=2"' in second  # the call went on


def _port_from(log: Path, server: subprocess.Popen) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = re.search(r"WebhookSite starting on (\d+)", log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        if server.poll() is not None:
            pytest.fail(f"ivr-serve stopped: {log.read_text(errors='replace')}")
        time.sleep(0.1)
    pytest.fail(f"ivr-serve did not listen within {START_TIMEOUT} s")


def _post(url: str, fields: dict[str, str]) -> str:
    request = urllib.request.Request(url, data=urlencode(fields).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
        assert response.status == 200
        return response.read().decode("utf-8")
