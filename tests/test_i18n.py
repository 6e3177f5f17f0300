"""The operator's language: chosen from the environment or ``--lang``,
messages from the catalogues, numbers, money and dates in its locale."""

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr import i18n
from ivr.reports.cli import main as report_main
from ivr.reports.reason_texts import described
from ivr.sim.cli import main as sim_main
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("environ", "expected"), [
    ({"LANG": "fr_FR.UTF-8"}, "fr"),
    ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LANG": "de_DE.UTF-8"}, "en"),
    ({}, "en"),
    ({"LC_ALL": "fr_BE.UTF-8", "LANG": "en_US.UTF-8"}, "fr"),
    ({"LC_MESSAGES": "fr_CA", "LANG": "en_US"}, "fr"),
    ({"LANGUAGE": "de:fr", "LANG": "en_US"}, "fr"),
    ({"LANGUAGE": "de", "LANG": "fr_FR"}, "fr"),
])
def test_the_language_follows_the_environment_as_gettext_reads_it(environ, expected):
    assert i18n.language_from_env(environ) == expected


def test_use_language_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert i18n.use_language("fr-FR") == "fr"
    assert i18n.current_language() == "fr"
    assert i18n.use_language(None) == "en"


def test_numbers_money_and_dates_follow_the_operator_locale():
    french, english = i18n.Formats("fr"), i18n.Formats("en")
    # Babel writes a narrow no-break space before the euro sign and as the thousands separator.
    assert french.money(1404.15).replace("\u202f", " ").replace("\xa0", " ") == "1 404,15 €"
    assert english.money(1404.15) == "€1,404.15"
    assert french.percent(0.4567).replace("\u202f", " ").replace("\xa0", " ") == "45,7 %"
    assert english.percent(0.4567) == "45.7%"
    assert french.number(12345).replace("\u202f", " ").replace("\xa0", " ") == "12 345"
    assert french.day(date(2026, 12, 6)) == "6 déc. 2026"
    assert english.day(date(2026, 12, 6)) == "Dec 6, 2026"


def test_the_catalogues_are_in_step_with_the_code():
    checked = subprocess.run([sys.executable, str(ROOT / "tools" / "update_catalog.py"),
                              "--missing"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == "", f"untranslated messages:\n{checked.stdout}"


# --- what an operator reads, in French -------------------------------------------------

def _no_break(text: str) -> str:
    """Babel's narrow and plain no-break spaces as spaces, to compare."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


def _broken_flows(folder: Path) -> list[Path]:
    """The demo flow with a tab, with a bad indent, and with a misspelt
    node: YAML stops at its first syntax error, so one file each."""
    demo = (ROOT / "flows" / "post_sale.yaml").read_text(encoding="utf-8")
    broken = {
        "a_tab.yaml": demo.replace("    next: main_menu\n", "\tnext: main_menu\n", 1),
        "b_indent.yaml": demo.replace("  welcome:\n    kind: say\n", "  welcome:\n     kind: say\n", 1),
        "c_typo.yaml": demo.replace("    next: main_menu\n", "    next: main_menuu\n", 1),
    }
    for name, text in broken.items():
        assert text != demo
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in broken]


def _lint(paths, environ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    env.update(environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", "from ivr.sim.cli import main; main()", "lint", "--prompts",
                           str(ROOT / "prompts"), *map(str, paths)],
                          capture_output=True, text=True, env=env, check=False)


def test_lint_speaks_french_from_lang_one_sentence_per_problem(tmp_path):
    tab, indent, typo = _broken_flows(tmp_path)
    linted = _lint([tab, indent, typo], {"LANG": "fr_FR.UTF-8"})
    assert linted.returncode == 1
    assert linted.stdout.splitlines() == [
        f"{tab}:133:1: erreur: une tabulation sert d'indentation, or YAML n'accepte que des espaces : "
        "remplacez la tabulation par deux espaces [yaml-syntax]",
        f"{indent}:130:3: erreur: 'welcome' est indenté de 2 espaces mais les lignes suivantes de 4 : "
        "indentez-le de 4 espaces comme elles [yaml-syntax]",
        f"{typo}:133:11: erreur: le champ 'next' du nœud 'welcome' mène à un nœud inconnu, 'main_menuu' ; "
        "vouliez-vous dire 'main_menu' ? [unknown-target]",
    ]
    assert linted.stderr == "3 problèmes\n"


def test_one_flow_with_a_tab_a_bad_indent_and_a_misspelt_node_gets_three_french_sentences(tmp_path):
    # Lint reads on past a mistake of indentation (as it was most likely
    # meant), so one run shows every real problem of the file.
    lines = (ROOT / "flows" / "post_sale.yaml").read_text(encoding="utf-8").splitlines(True)
    assert lines[132] == "    next: main_menu\n" and lines[236] == "    say: several_orders\n"
    assert lines[261] == "    say: ask_order_number\n"
    lines[132] = "    next: main_mnu\n"
    lines[236] = "\tsay: several_orders\n"
    lines[261] = "     say: ask_order_number\n"
    flow = tmp_path / "post_sale.yaml"
    flow.write_text("".join(lines), encoding="utf-8")
    linted = _lint([flow], {"LANG": "fr_FR.UTF-8"})
    assert linted.returncode == 1
    assert linted.stdout.splitlines() == [
        f"{flow}:133:11: erreur: le champ 'next' du nœud 'welcome' mène à un nœud inconnu, 'main_mnu' ; "
        "vouliez-vous dire 'main_menu' ? [unknown-target]",
        f"{flow}:237:1: erreur: une tabulation sert d'indentation, or YAML n'accepte que des espaces : "
        "remplacez la tabulation par deux espaces [yaml-syntax]",
        f"{flow}:262:6: erreur: 'say' est indenté de 5 espaces, plus que la ligne du dessus ne le permet : "
        "alignez-le sur 'kind' (4 espaces) [yaml-syntax]",
    ]
    assert linted.stderr == "3 problèmes\n"


def test_lint_stays_english_by_default(tmp_path):
    *_, typo = _broken_flows(tmp_path)
    linted = _lint([typo], {"LANG": "C.UTF-8"})
    assert linted.stdout == (f"{typo}:133:11: error: node 'welcome' 'next' goes to unknown node 'main_menuu'; "
                             "did you mean 'main_menu'? [unknown-target]\n")
    assert linted.stderr == "1 problem\n"


def test_ivr_sim_lang_overrides_the_environment(tmp_path):
    *_, typo = _broken_flows(tmp_path)
    result = CliRunner().invoke(sim_main, ["--lang", "fr", "lint", "--prompts", str(ROOT / "prompts"), str(typo)],
                                catch_exceptions=False)
    assert ": erreur: le champ 'next' du nœud 'welcome'" in result.output
    assert i18n.current_language() == "fr"


def _report_log(path: Path) -> Path:
    """A call log with one self-served call and one transferred, and the
    flow version that describes its reasons per language."""
    store = CallStore.open(path)
    db = store.db
    source = ("languages: [fr-FR, en-US]\nreasons:\n  order_status:\n    fr-FR: Où en est ma commande\n"
              "    en-US: Where my order is\n  return_refund: Retour ou remboursement\n")
    db["flow_versions"].insert({"flow": "post_sale", "version": "v1", "source": source, "prompts_json": "{}",
                                "first_seen": "2026-11-01T00:00:00+00:00"})
    for n, (outcome, reason, cause) in enumerate([("self_served", "order_status", None),
                                                  ("transferred", "return_refund", "policy")], 1):
        db["calls"].insert({
            "call_id": f"CA{n}", "flow": "post_sale", "version": "v1",
            "started_at": f"2026-11-24T0{n}:00:00+01:00", "ended_at": f"2026-11-24T0{n}:00:00+01:00",
            "caller_hash": f"h{n}", "lang": "fr-FR", "reason": reason, "outcome": outcome, "cause": cause,
            "exit_node": "answer", "ivr_seconds": 60.0})
    store.close()
    return path


def test_ivr_report_summary_in_french_with_money_in_the_french_form(tmp_path):
    log = _report_log(tmp_path / "ivr.db")
    result = CliRunner().invoke(report_main, ["--lang", "fr", "summary", "--db", str(log), "--since",
                                              "2026-11-01", "--agent-cost", "1404.19"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = _no_break(result.output).splitlines()
    assert lines[0] == "Appels : depuis le 1 nov. 2026"
    assert lines[1].split()[:5] == ["Appels", "Résolu", "par", "le", "SVI"]
    # One self-served call saves an agent call (1 404,19 €) less a minute of the IVR for each call (0,02 €).
    assert lines[3].endswith(" 60,0  1 404,15 €")
    assert "Appels transférés, par cause :" in lines
    assert ("Fenêtre de rappel : 24 h ; un appel traité par un conseiller coûte 1 404,19 €, "
            "une minute de SVI 0,02 €.  Les appels en cours ne sont pas comptés.") in lines


def test_ivr_report_shows_the_flows_reasons_in_the_operators_language(tmp_path):
    log = _report_log(tmp_path / "ivr.db")
    french = CliRunner().invoke(report_main, ["--lang", "fr", "reasons", "--db", str(log)],
                                catch_exceptions=False).output.splitlines()
    meanings = french[french.index("Ce que recouvre chaque motif d'appel :") + 1:][:2]
    assert meanings == ["order_status: Où en est ma commande", "return_refund: Retour ou remboursement"]
    english = CliRunner().invoke(report_main, ["reasons", "--db", str(log)], catch_exceptions=False).output
    assert "order_status: Where my order is" in english.splitlines()
    assert "What the reasons mean:" in english


@pytest.mark.parametrize(("description", "lang", "expected"), [
    ("Late parcel", "fr", "Late parcel"),
    ({"fr-FR": "Colis en retard", "en-US": "Late parcel"}, "en", "Late parcel"),
    ({"fr-FR": "Colis en retard", "en-US": "Late parcel"}, "fr", "Colis en retard"),
    ({"en-US": "Late parcel", "de-DE": "Paket verspätet"}, "fr", "Paket verspätet"),  # the flow's default
    ({"en-US": "Late parcel"}, "fr", "Late parcel"),  # the only one
])
def test_a_reason_is_described_in_the_operators_language_else_the_flows_default(description, lang, expected):
    assert described(description, lang, default="de-DE") == expected


def test_ivr_report_stays_english_by_default(tmp_path):
    log = _report_log(tmp_path / "ivr.db")
    result = CliRunner().invoke(report_main, ["summary", "--db", str(log), "--agent-cost", "1404.19"],
                                catch_exceptions=False)
    assert result.output.splitlines()[0].split()[:2] == ["Calls", "Self-served"]
    assert result.output.splitlines()[2].endswith(" 60.0  1,404.15 EUR")


def test_ivr_report_errors_in_french(tmp_path):
    missing = tmp_path / "nowhere.db"
    result = CliRunner().invoke(report_main, ["--lang", "fr", "summary", "--db", str(missing)])
    assert result.exit_code == 1
    assert result.output == (f"Erreur : {missing} : fichier introuvable (donnez le journal d'appels qu'écrit "
                             "le serveur, par ex. ivr.db)\n")
