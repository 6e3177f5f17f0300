"""Every prompt in every case it can meet, against tests/golden/prompts.txt.

When a prompt or a filter changes on purpose, regenerate the file and
read the difference as a caller would hear it:

    python tools/render_prompts.py --write
    git diff tests/golden/prompts.txt
"""

from pathlib import Path

import golden_support
from golden_support import assert_golden

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "prompts.txt"


def load_tool():
    return golden_support.load_tool("render_prompts")


def test_every_prompt_renders_as_the_golden_file_says():
    assert_golden(load_tool().render_all() + "\n", GOLDEN, "a prompt renders differently", "render_prompts")


def test_the_golden_file_covers_every_template_in_every_language():
    golden = GOLDEN.read_text(encoding="utf-8")
    for lang in ("fr-FR", "en-US"):
        for template in sorted((ROOT / "prompts" / lang).glob("*.j2")):
            assert f"== {lang}/{template.stem}\n" in golden, f"{lang}/{template.name} is not rendered"
    assert "ERROR" not in golden and "MISSING" not in golden


def test_the_cases_include_each_status_delivery_day_and_closed_period():
    golden = GOLDEN.read_text(encoding="utf-8")
    for heard in ("Il devrait vous être livré le mardi 8 décembre.",
                  "Il devrait vous être livré samedi.", "Il devrait vous être livré demain.",
                  "It should arrive on Tuesday, December 8.", "It should arrive on Saturday.",
                  "Nos conseillers vous répondront samedi à 9 h.",  # 24 December, 30 April
                  "Nos conseillers vous répondront lundi à 9 h.",  # a Saturday afternoon
                  "Our agents will be back tomorrow at 9 AM, Paris time.",
                  "au 0 6 1 2 3 4 5 6 7 8 dès l'ouverture", "votre colis a été livré hier"):
        assert heard in golden, heard


def test_a_template_that_fails_is_shown_failing_not_skipped(tmp_path):
    tool = load_tool()
    prompts = tmp_path / "prompts"
    for lang in ("fr-FR", "en-US"):
        (prompts / lang).mkdir(parents=True)
        for template in [*(ROOT / "prompts" / lang).glob("*.j2"), ROOT / "prompts" / lang / "speech.yaml"]:
            (prompts / lang / template.name).write_bytes(template.read_bytes())
    (prompts / "en-US" / "goodbye.j2").write_text("Bye {{ 1 / 0 }}")
    text = tool.render_all(prompts)
    assert "== en-US/goodbye\n[always]\n   ERROR: ZeroDivisionError: division by zero\n" in text
