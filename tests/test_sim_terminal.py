"""``ivr-sim`` for CI and terminals: ``test --junit``, progress bars on
long commands, line editing and history at ``call``'s prompt."""

import io
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from ivr.sim import line_editing as editing
from ivr.sim.cli import main
from ivr.sim.progress import progress

ROOT = Path(__file__).parent.parent


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def _failing_scenarios(tmp_path) -> Path:
    scenario = tmp_path / "mixed.yaml"
    scenario.write_text(
        f"flow: {ROOT / 'flows' / 'post_sale.yaml'}\n"
        "defaults: {at: '2026-11-24 10:00', caller: '+33639980014'}\n"
        "scenarios:\n"
        "  - name: hanging up at once is abandoned\n"
        "    steps: [hangup]\n"
        "    end: {outcome: abandoned}\n"
        "  - name: expects the wrong outcome\n"
        "    steps: [hangup]\n"
        "    end: {outcome: transferred}\n")
    return scenario


def test_junit_has_one_testcase_per_scenario_with_failures_and_times(tmp_path):
    out = tmp_path / "results" / "junit.xml"
    out.parent.mkdir()
    result = invoke("test", _failing_scenarios(tmp_path), "--prompts", ROOT / "prompts",
                    "--junit", out)
    assert result.exit_code == 1
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("2", "1", "0")
    [suite] = root.findall("testsuite")
    assert suite.get("name") == str(tmp_path / "mixed.yaml")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["hanging up at once is abandoned",
                                              "expects the wrong outcome"]
    assert all(c.get("classname") == "mixed" and float(c.get("time")) >= 0 for c in cases)
    assert cases[0].find("failure") is None
    [failure] = cases[1].findall("failure")
    assert failure.get("message") == "expected outcome 'transferred', found 'abandoned'"
    assert failure.text == "end of call: expected outcome 'transferred', found 'abandoned'"
    assert float(root.get("time")) == float(suite.get("time"))


def test_junit_of_the_demo_scenarios_counts_every_scenario(tmp_path):
    out = tmp_path / "junit.xml"
    result = invoke("test", ROOT / "flows" / "tests", "--junit", out)
    assert result.exit_code == 0, result.output
    root = ET.parse(out).getroot()
    passed = int(result.output.rsplit("\n", 2)[-2].split(" passed")[0])
    assert int(root.get("tests")) == passed == sum(len(s.findall("testcase")) for s in root)
    assert {Path(s.get("name")).name for s in root} == {
        p.name for p in (ROOT / "flows" / "tests").glob("*.yaml")}


def test_junit_to_a_missing_folder_is_one_line(tmp_path):
    result = invoke("test", _failing_scenarios(tmp_path), "--junit", tmp_path / "no" / "j.xml")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot write {tmp_path / 'no' / 'j.xml'}: ")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_a_bar_on_a_terminal():
    terminal = _Terminal()
    with progress(4, "Playing calls", terminal) as advance:
        for _ in range(4):
            advance(1)
    assert "Playing calls" in terminal.getvalue() and "100%" in terminal.getvalue()


def test_progress_prints_nothing_when_not_a_terminal():
    pipe = io.StringIO()
    with progress(4, "Playing calls", pipe) as advance:
        advance(4)
    assert pipe.getvalue() == ""


def test_traffic_reports_each_call_to_its_progress(tmp_path, monkeypatch):
    import ivr.sim.cli as cli

    steps = []

    class Recorded:
        def __init__(self, length, label, stream=None):
            self.length = length

        def __enter__(self):
            return steps.append

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(cli, "progress", Recorded)
    result = invoke("traffic", ROOT / "flows" / "post_sale.yaml", "--db", tmp_path / "t.db",
                    "--calls", 5, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert steps == [1] * 5


def test_the_history_lives_in_the_state_folder():
    assert editing.history_path({"XDG_STATE_HOME": "/s"}) == Path("/s/ivr/sim_history")
    assert editing.history_path({"HOME": "/home/u"}) == Path("/home/u/.local/state/ivr/sim_history")


class _FakeReadline:
    def __init__(self):
        self.read, self.written, self.length = [], [], None

    def read_history_file(self, path):
        self.read.append(path)
        raise FileNotFoundError(path)

    def set_history_length(self, length):
        self.length = length

    def set_completer(self, completer):
        self.completer = completer

    def parse_and_bind(self, line):
        pass

    def write_history_file(self, path):
        self.written.append(path)


def test_line_editing_reads_and_keeps_a_bounded_history(tmp_path, monkeypatch):
    fake = _FakeReadline()
    monkeypatch.setattr(editing, "_readline", lambda: fake)
    path = tmp_path / "state" / "ivr" / "sim_history"
    with editing.line_editing(path, stdin=_Terminal()) as on:
        assert on is True
    assert fake.read == fake.written == [str(path)]
    assert fake.length == editing.HISTORY_LENGTH and path.parent.is_dir()
    assert [fake.completer("s", i) for i in range(3)] == ["say ", "silence", None]


def test_no_line_editing_without_a_terminal(tmp_path, monkeypatch):
    fake = _FakeReadline()
    monkeypatch.setattr(editing, "_readline", lambda: fake)
    with editing.line_editing(tmp_path / "h", stdin=io.StringIO()) as on:
        assert on is False
    assert fake.read == fake.written == []


def test_a_piped_call_still_reads_its_lines_and_writes_no_history(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    result = invoke("call", ROOT / "flows" / "post_sale.yaml", "--at", "2026-11-24 10:00",
                    input="hangup\n")
    assert result.exit_code == 0, result.output
    assert "Call ended: outcome" in result.output
    assert not (tmp_path / "ivr").exists()
