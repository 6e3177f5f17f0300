"""``ivr-serve --log-file``: the server's log in a file rotated by size."""

import pytest
from twisted.logger import Logger

from ivr.server import tap
from ivr.server.logs import text_log_observer


def test_log_options_default_to_ten_files_of_ten_megabytes():
    options = tap.Options()
    options.parseOptions(["--log-file", "ivr.log"])
    assert (options["log-file"], options["log-max-bytes"], options["log-files"]) == \
        ("ivr.log", 10_000_000, 10)


def test_the_log_file_rotates_by_size_and_keeps_a_bounded_number_of_files(tmp_path):
    out = tap.log_file(str(tmp_path / "ivr.log"), max_bytes=1000, files=3)
    log = Logger(observer=text_log_observer(out))
    try:
        for n in range(200):
            log.info("turn {call} {turn} at {node}", call=f"CA{n:04d}", turn=n, node="main_menu")
    finally:
        out.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ivr.log", "ivr.log.1", "ivr.log.2", "ivr.log.3"]
    assert all(p.stat().st_size <= 1000 + 200 for p in tmp_path.iterdir())
    assert "turn CA0199 199 at main_menu" in (tmp_path / "ivr.log").read_text()


@pytest.mark.parametrize("argv", [["--log-max-bytes", "0"], ["--log-files", "-1"],
                                  ["--log-max-bytes", "ten"]])
def test_bad_log_sizes_are_refused(argv):
    with pytest.raises(tap.usage.UsageError, match="must be a positive whole number"):
        tap.Options().parseOptions(argv)


def test_a_log_file_in_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(tap.usage.UsageError, match="its folder does not exist"):
        tap.Options().parseOptions(["--log-file", str(tmp_path / "nowhere" / "ivr.log")])


def test_ivr_serve_writes_the_lines_left_when_its_reactor_stops(tmp_path, monkeypatch):
    from twisted.application import service
    from twisted.internet import task

    observers = []

    class Beginner:
        def beginLoggingTo(self, given):
            observers.extend(given)

    class Reactor(task.Clock):
        def addSystemEventTrigger(self, *args):
            pass

        def run(self):  # the last pass logs a line, then the reactor stops
            Logger(namespace="ivr.server", observer=observers[0]).info("turn CA1 3 at goodbye")

    monkeypatch.setattr("twisted.logger.globalLogBeginner", Beginner())
    monkeypatch.setattr(tap, "makeService", lambda options, reactor: service.MultiService())
    options = tap.Options()
    options.parseOptions(["--log-file", str(tmp_path / "ivr.log")])
    options["inherited-socket"] = (3, None)  # nothing to bind here
    tap.serve(options, Reactor())
    assert (tmp_path / "ivr.log").read_text().endswith("turn CA1 3 at goodbye\n")
