"""Test helpers for prompt folders built in a temporary directory."""

import shutil
from pathlib import Path

from ivr.flow.prompts import SERVER_PROMPTS

SERVER_PROMPTS_ROOT = Path(__file__).parent.parent / "prompts"


#: What every flow that hears speech needs besides the server's prompts:
#: the language's speech data and the prompt that confirms a close call.
SPEECH_FILES = ("speech.yaml", "confirm_choice.j2")


def add_server_prompts(root, languages=("fr-FR", "en-US")):
    """Copy the prompts the server says in every flow (ivr.prompts.SERVER_PROMPTS),
    and the speech files (SPEECH_FILES), from the project's prompts into
    ``root``, for ``languages``."""
    for lang in languages:
        (Path(root) / lang).mkdir(parents=True, exist_ok=True)
        for name in [f"{name}.j2" for name in SERVER_PROMPTS] + list(SPEECH_FILES):
            shutil.copy(SERVER_PROMPTS_ROOT / lang / name, Path(root) / lang)
