"""Paths of the plugin's bundled files (icons), in one place."""
from __future__ import annotations

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent.parent


def icon_path() -> str:
    return str(PLUGIN_DIR / "icon.png")


def rectangle_icon_path() -> str:
    """The map tool's own icon (a dragged rectangle), distinct from the panel's (the plugin icon)."""
    return str(PLUGIN_DIR / "icon_rectangle.png")
