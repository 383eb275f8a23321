"""The README's "Configuration" table names every `RAGLOOP_*` variable the settings accept."""

from __future__ import annotations

import re
from pathlib import Path

from schemas.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_settings_table() -> str:
    text = README.read_text()
    section = text[text.index("## Configuration"):]
    return section[:section.index("\n## ", 1)]


def test_every_setting_is_in_the_readme_table() -> None:
    documented = set(re.findall(r"^\|.*$", readme_settings_table(), flags=re.MULTILINE))
    names = set(re.findall(r"`(RAGLOOP_[A-Z0-9_]+)`", "\n".join(documented)))
    missing = [name for name in Settings.env_names() if name not in names]
    assert missing == [], f"add these to README.md's Configuration table: {missing}"
