"""Paths of the plugin's bundled files (icon), in one place."""
from __future__ import annotations

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent.parent


def icon_path() -> str:
    return str(PLUGIN_DIR / "icon.png")
