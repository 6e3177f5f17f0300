"""The commands' ``--help`` and click's own words (Usage, Options, its
error messages) in the operator's language: French under a French
locale or ``--lang fr``, English otherwise."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.click_i18n import help_texts
from ivr.i18n import translations
from ivr.reports.cli import main as report_main
from ivr.server import cli as serve_cli
from ivr.server.options import SERVE_OPTIONS
from ivr.sim.cli import main as sim_main

ROOT = Path(__file__).resolve().parent.parent
LANGUAGE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def _command(module: str, *argv: str, lang: str) -> subprocess.CompletedProcess:
    """``argv`` run by a command's ``main`` in a process of its own under ``LANG=lang``."""
    env = {k: v for k, v in os.environ.items() if k not in LANGUAGE_VARIABLES}
    env.update(LANG=lang, PYTHONPATH=str(ROOT), COLUMNS="100")
    return subprocess.run([sys.executable, "-c", f"from {module} import main; main()", *argv],
                          capture_output=True, text=True, env=env, check=False)


def _flat(text: str) -> str:
    """``text`` with its lines joined, as click wraps them to the terminal."""
    return " ".join(text.split())


def test_ivr_sim_help_is_french_under_a_french_locale():
    shown = _command("ivr.sim.cli", "--help", lang="fr_FR.UTF-8")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Usage : ")
    out = _flat(shown.stdout)
    assert "Essayer, tester et vérifier des parcours d'appel de SVI. Exemple :" in out
    assert "--help Affiche ce message et quitte." in out
    assert "--version Affiche la version et quitte." in out
    assert "Commandes: call Passe un appel interactif à FLOW dans le terminal." in out


@pytest.mark.parametrize("lang", ["en_US.UTF-8", "C.UTF-8", "C"])
def test_ivr_sim_help_stays_english_under_any_other_locale(lang):
    shown = _command("ivr.sim.cli", "--help", lang=lang)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Usage: ")
    out = _flat(shown.stdout)
    assert "Try, test and check IVR call flows. Example:" in out
    assert "--help Show this message and exit." in out
    assert "Commands: call Place an interactive call to FLOW in the terminal." in out


def test_a_commands_options_and_defaults_are_french_under_a_french_locale():
    shown = _command("ivr.reports.cli", "call", "--help", lang="fr_FR.UTF-8")
    out = _flat(shown.stdout)
    assert "Un appel de bout en bout : quand il a commencé" in out
    assert "--db FILE Le journal d'appels qu'écrit le serveur (ouvert en lecture seule). " \
           "[par défaut : ivr.db]" in out
    assert "--json La chronologie en JSON, pour les scripts." in out


def test_an_unknown_option_is_a_french_error_under_a_french_locale():
    shown = _command("ivr.sim.cli", "lint", "--nope", lang="fr_FR.UTF-8")
    assert shown.returncode == 2
    assert shown.stderr.splitlines()[1:] == ["Essayez '-c lint --help' pour l'aide.", "",
                                             "Erreur : Option '--nope' inconnue."]


def test_an_unknown_option_stays_an_english_error_under_c():
    shown = _command("ivr.sim.cli", "lint", "--nope", lang="C")
    assert shown.returncode == 2
    assert shown.stderr.splitlines()[1:] == ["Try '-c lint --help' for help.", "",
                                             "Error: No such option '--nope'."]


def test_lang_fr_before_help_is_french_whatever_the_environment():
    # conftest sets LANG=C.UTF-8: --lang is read before --help is shown.
    result = CliRunner().invoke(sim_main, ["--lang", "fr", "--help"], prog_name="ivr-sim",
                                catch_exceptions=False)
    assert result.output.startswith("Usage : ivr-sim [OPTIONS] COMMAND [ARGS]...")
    assert "Affiche ce message et quitte." in result.output


def test_a_subcommand_keeps_its_groups_language():
    result = CliRunner().invoke(report_main, ["--lang", "fr", "funnel", "--help"],
                                prog_name="ivr-report", catch_exceptions=False)
    assert result.output.startswith("Usage : ivr-report funnel")
    assert "Pour chaque nœud d'une version de parcours" in result.output


def test_a_french_help_leaves_the_commands_in_english():
    runner = CliRunner()
    runner.invoke(sim_main, ["--lang", "fr", "graph", "--help"], catch_exceptions=False)
    english = runner.invoke(sim_main, ["--lang", "en", "graph", "--help"], prog_name="ivr-sim",
                            catch_exceptions=False).output
    assert english.startswith("Usage: ivr-sim graph")
    assert "Draw FLOW: every node and every way out of it." in english
    assert "Show this message and exit." in english
    assert sim_main.commands["graph"].help.startswith("Draw FLOW")


def test_a_click_error_is_french_with_lang_fr():
    result = CliRunner().invoke(report_main, ["--lang", "fr", "summary", "--format", "xml"],
                                prog_name="ivr-report")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "Erreur : Valeur invalide pour '--format' : 'xml' n'est pas l'une des valeurs "
        "'table', 'csv', 'json'.")


def test_ivr_serve_options_are_french_with_lang_fr(capsys):
    serve_cli.main(["--lang", "fr", "--help"])
    out = _flat(capsys.readouterr().out)
    assert out.startswith("Usage : ivr-serve [OPTIONS]")
    assert "-f, --flows DIR Dossier des fichiers de parcours (*.yaml). [par défaut : flows]" in out
    assert "-h, --help Affiche ce message et quitte." in out


def test_ivr_serve_options_stay_english_by_default(capsys):
    serve_cli.main(["--help"])
    out = _flat(capsys.readouterr().out)
    assert "-f, --flows DIR Folder of flow files (*.yaml). [default: flows]" in out


def test_every_help_text_has_its_french():
    french = translations("fr")
    texts = [*help_texts(sim_main), *help_texts(report_main), *(o.help for o in SERVE_OPTIONS)]
    clicks = translations("fr", "click")
    untranslated = [text for text in texts
                    if french.gettext(text) == text and clicks.gettext(text) == text]
    assert untranslated == []
    assert len(texts) > 100


@pytest.mark.parametrize("message", [
    "Usage:", "Commands", "Show this message and exit.", "Error: {message}",
    "No such option {name!r}.", "No such command {name!r}.", "Try '{command} {option}' for help.",
    "Missing argument", "Invalid value for {param_hint}: {message}", "default: {default}",
])
def test_the_click_words_an_operator_sees_have_their_french(message):
    assert translations("fr", "click").gettext(message) != message


@pytest.mark.parametrize(("argv", "french", "english"), [
    (["--hold-after", "12"], "--hold-after doit rester bien en dessous des 15 s de l'opérateur",
     "--hold-after must stay well under the provider's 15 s"),
    (["--workers", "0"], "--workers doit être un nombre entier positif, et non '0'",
     "--workers must be a positive whole number, not '0'"),
    (["--dashboard-token", "short"], "--dashboard-token doit faire au moins 16 caractères (créez-en un avec : "
     "python -c 'import secrets; print(secrets.token_urlsafe(24))')",
     "--dashboard-token must be at least 16 characters (make one with: "
     "python -c 'import secrets; print(secrets.token_urlsafe(24))')"),
])
def test_ivr_serve_refuses_a_bad_value_in_the_operators_language(capsys, argv, french, english):
    for lang, expected in (("fr", french), ("en", english)):
        with pytest.raises(SystemExit) as done:
            serve_cli.main(["--lang", lang, *argv])
        assert done.value.code == 2
        assert capsys.readouterr().err == f"ivr-serve: {expected}\n"
