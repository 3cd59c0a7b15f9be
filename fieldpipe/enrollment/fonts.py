"""The Devanagari font for certificates: Noto Sans Devanagari (OFL), installed from PyPI as
fontpkg-noto-sans-devanagari (requirements.txt), so nothing is fetched at run time. It covers Latin too.

The package ships one variable font; making a static instance of a weight takes seconds, so each weight
is instantiated once and kept under var/fonts (per font version), not per certificate.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import fontpkg_noto_sans_devanagari
from fontTools.ttLib import TTFont
from fontTools.varLib.instancer import instantiateVariableFont

from fieldpipe.config import var_dir

WEIGHTS = {"": 400, "B": 700}  # fpdf style -> weight

# fontTools logs every table it instantiates or subsets (fpdf subsets the font for each PDF) at INFO: a
# flood in the API's and the tasks' logs that says nothing an operator needs.
logging.getLogger("fontTools").setLevel(logging.WARNING)


def _variable_font() -> Path:
    return next((Path(fontpkg_noto_sans_devanagari.ROOT) / "files").glob("NotoSansDevanagari*.ttf"))


@functools.lru_cache(maxsize=1)
def devanagari_fonts() -> dict[str, Path]:
    """Static regular and bold fonts, by fpdf style ("" and "B")."""
    source = _variable_font()
    folder = var_dir() / "fonts"
    folder.mkdir(parents=True, exist_ok=True)
    fonts = {}
    for style, weight in WEIGHTS.items():
        path = folder / f"NotoSansDevanagari-{int(source.stat().st_mtime)}-{weight}.ttf"
        if not path.exists():
            static = instantiateVariableFont(TTFont(source), {"wght": weight, "wdth": 100})
            partial = path.with_suffix(f".{os.getpid()}.part")
            static.save(partial)
            partial.replace(path)  # atomic: a concurrent reader never sees half a font
        fonts[style] = path
    return fonts
