"""Test helpers for prompt folders built in a temporary directory."""

import shutil
from pathlib import Path

from ivr.prompts import SERVER_PROMPTS

SERVER_PROMPTS_ROOT = Path(__file__).parent.parent / "prompts"


def add_server_prompts(root, languages=("fr-FR", "en-US")):
    """Copy the prompts the server says in every flow (ivr.prompts.SERVER_PROMPTS)
    from the project's prompts into ``root``, for ``languages``."""
    for lang in languages:
        (Path(root) / lang).mkdir(parents=True, exist_ok=True)
        for name in SERVER_PROMPTS:
            shutil.copy(SERVER_PROMPTS_ROOT / lang / f"{name}.j2", Path(root) / lang)
