"""``ivr-serve`` on click: help, one-line errors, the version, a port in
use, and the same options as ``twist ivr`` (one declaration for both)."""

import os
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from ivr.providers.registry import providers
from ivr.server import cli, tap
from ivr.server.listening import another_port
from ivr.server.options import SERVE_OPTIONS, Options

ROOT = Path(__file__).parent.parent


def _run(capsys, *argv):
    """``ivr-serve argv``: (exit status, standard output, standard error)."""
    try:
        cli.main(list(argv))
        status = 0
    except SystemExit as done:
        status = done.code
    out, err = capsys.readouterr()
    return status, out, err


def test_help_lists_every_option_with_examples(capsys):
    status, out, _err = _run(capsys, "--help")
    assert status == 0
    assert out.startswith("Usage: ivr-serve [OPTIONS]")
    assert "  Examples:\n      ivr-serve\n" in out
    for option in SERVE_OPTIONS:
        assert f"--{option.name}" in out
    assert "--version" in out


def test_help_states_the_dashboard_token_minimum(capsys):
    _status, out, _err = _run(capsys, "--help")
    assert "at least 16 printable characters" in " ".join(out.split())


def test_help_is_in_the_language_asked_for(capsys):
    _status, out, _err = _run(capsys, "--lang", "fr", "--help")
    assert "Exemples :" in out


def test_a_misspelt_option_is_one_line_with_a_suggestion(capsys):
    status, out, err = _run(capsys, "--dbb", "x.db")
    assert status == 2 and out == ""
    assert err == "ivr-serve: No such option '--dbb'. Did you mean '--db'?\n"


def test_a_bad_value_is_one_line(capsys):
    status, _out, err = _run(capsys, "--hold-after", "12")
    assert status == 2
    assert err == "ivr-serve: --hold-after must stay well under the provider's 15 s\n"


def test_version_is_the_projects(capsys):
    status, out, _err = _run(capsys, "--version")
    assert status == 0
    assert out == f"ivr-serve, version {metadata.version('ivr-engine')}\n"


def test_a_port_in_use_is_one_line_and_creates_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        for workers in ("1", "2"):
            status, out, err = _run(capsys, "--listen", f"tcp:{port}:interface=127.0.0.1",
                                    "--workers", workers, "--log-file", "ivr.log",
                                    "--access-log", "access.log",
                                    "--flows", str(ROOT / "flows"), "--prompts", str(ROOT / "prompts"))
            assert (status, out) == (1, "")
            assert err == (f"ivr-serve: cannot listen on 127.0.0.1:{port}: address already in use; "
                           f"pick another with --listen tcp:{port + 1}:interface=127.0.0.1\n")
    finally:
        taken.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("description, port, other", [
    ("tcp:8080:interface=127.0.0.1", 8080, "tcp:8081:interface=127.0.0.1"),
    ("tcp:8080", 8080, "tcp:8081"),
    ("tcp6:port=8080:interface=\\:\\:1", 8080, "tcp6:port=8081:interface=\\:\\:1"),
    ("tcp:0:interface=127.0.0.1", 0, None),
    ("unix:/tmp/ivr.sock", "/tmp/ivr.sock", None),
])
def test_the_suggested_listen_is_the_next_port(description, port, other):
    assert another_port(description, port) == other


def test_ivr_serve_and_twist_ivr_read_the_same_values(monkeypatch):
    for option in SERVE_OPTIONS:
        if option.env:
            monkeypatch.delenv(option.env, raising=False)
    argv = ["--db", "calls.db", "-f", "my-flows", "--listen", "tcp:9000:interface=127.0.0.1",
            "--lookup-timeout", "3", "--workers", "2", "--dashboard-token", "x" * 16,
            "--sync-every-commit", "--retention-days", "30"]
    twisted_options = Options()
    twisted_options.parseOptions(argv)
    command = cli.serve_command()
    with command.make_context("ivr-serve", list(argv)) as ctx:
        click_options = cli.checked_options(ctx.params, argv)
    for option in SERVE_OPTIONS:
        assert click_options[option.name] == twisted_options[option.name], option.name
    assert click_options["arguments"] == twisted_options["arguments"] == argv


def test_every_providers_secret_is_an_option_read_from_its_variable(monkeypatch):
    declared = {option.name: option for option in SERVE_OPTIONS}
    for provider in providers().values():
        option = declared[provider.secret_option.lstrip("-")]
        assert option.env == provider.secret_env
        monkeypatch.setenv(provider.secret_env, f"secret-of-{provider.name}")
    monkeypatch.setenv("TWILIO_SHARED_KEY", "shared")
    options = Options()
    options.parseOptions([])
    for provider in providers().values():
        assert options[provider.secret_option.lstrip("-")] == f"secret-of-{provider.name}"
    assert options["twilio-auth-token"] == "secret-of-twilio"
    assert options["twilio-shared-key"] == "shared"


def test_the_entry_point_still_runs_one_worker_per_core(monkeypatch):
    started = []
    monkeypatch.setattr(tap, "serve", lambda options, reactor: started.append(options["workers"]))
    monkeypatch.setattr(tap.os, "cpu_count", lambda: 3)
    tap.main(["--db", "x.db"])
    assert started == [3]


def _twist_help(env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twisted", "ivr", "--help"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _assert_lists_every_option(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    for option in SERVE_OPTIONS:
        assert f"--{option.name}" in result.stdout, option.name


def test_twist_ivr_help_lists_the_options_from_a_clone(tmp_path):
    # The clone on the path, as `editable_mode=compat` puts it: Twisted finds
    # twisted/plugins/ivr_plugin.py there.
    _assert_lists_every_option(_twist_help({**os.environ, "PYTHONPATH": str(ROOT)}, tmp_path))


def test_twist_ivr_help_lists_the_options_once_installed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    found = subprocess.run([sys.executable, "-c", "import ivr; print(ivr.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    if found.returncode != 0 or not Path(found.stdout.strip()).is_relative_to(ROOT):
        pytest.skip("ivr-engine is not installed from this clone with "
                    "`pip install --config-settings editable_mode=compat -e .` "
                    f"(import ivr gives {found.stdout.strip() or found.stderr.strip()!r})")
    _assert_lists_every_option(_twist_help(env, tmp_path))


def test_lang_is_for_that_run_only(capsys, monkeypatch):
    from ivr.i18n import current_language

    monkeypatch.setenv("LANGUAGE", "en")
    _run(capsys, "--lang", "fr", "--help")
    assert current_language() == "en"
