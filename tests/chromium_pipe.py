"""Headless Chromium driven over the DevTools protocol on a pipe, for the
dashboard's browser tests.

``--remote-debugging-pipe`` makes Chromium read commands on its file
descriptor 3 and write answers on 4, as JSON messages ended by a NUL byte:
no port is opened, so nothing but this process can drive it.  Every wait
is bounded by a deadline (no sleeping); :meth:`Browser.close` ends the
process it started, and only it.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

# Headless in a container: no sandbox (no user namespaces), no GPU, and
# nothing that reaches out to the network on its own.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
         "--disable-extensions", "--force-device-scale-factor=1"]


class BrowserError(RuntimeError):
    """Chromium answered a command with an error, died, or took too long."""


class Browser:
    """One headless Chromium and one page (tab) in it."""

    def __init__(self, executable: str, profile: Path, timeout: float = 90, log=None):
        self.timeout = timeout
        self.profile = profile
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()

        def give_chromium_its_pipes():  # in the child, before exec: fds 3 and 4
            # Copies above 4 first: a pipe may itself be on 3 or 4.
            reading = fcntl.fcntl(commands_read, fcntl.F_DUPFD, 10)
            writing = fcntl.fcntl(answers_write, fcntl.F_DUPFD, 10)
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        # The pipes are not inheritable (PEP 446); dup2 makes inheritable
        # copies on 3 and 4, so close_fds must leave them.
        self.process = subprocess.Popen(
            [executable, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            close_fds=False, preexec_fn=give_chromium_its_pipes)
        os.close(commands_read)
        os.close(answers_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []
        self.session = None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Network.enable")

    # -- the protocol ------------------------------------------------------------------

    def send(self, method: str, **params) -> dict:
        """Send a command (to the page once attached) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode("utf-8") + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            if "method" in answer:
                self._events.append(answer)

    def wait_for(self, event: str) -> dict:
        """The next event named ``event`` of the page."""
        while True:
            for i, message in enumerate(self._events):
                if message["method"] == event:
                    return self._events.pop(i)
            self._events.append(self._read())

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"Chromium did not answer within {self.timeout} s")
            ready, _, _ = select.select([self._answers], [], [], left)
            if ready:
                chunk = os.read(self._answers, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium ended (exit status {self.process.poll()})")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    # -- what the tests do -------------------------------------------------------------

    def open(self, url: str, *, width: int, height: int, headers: dict[str, str]) -> None:
        """Load ``url`` in a window ``width`` × ``height`` CSS px (a phone's
        when narrow), sending ``headers`` with each request."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=width < 600)
        self.send("Network.setExtraHTTPHeaders", headers=headers)
        self._events.clear()
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"the script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, width: int) -> tuple[int, int]:
        """A PNG of the whole page at ``width`` px, into ``path``; its size."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        # Beyond the window, at the window's size: 85vh stays the window's.
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": width, "height": height,
                               "scale": 1})["data"]
        path.write_bytes(base64.b64decode(data))
        return width, height

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._commands, self._answers):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)
