"""Text in the drawing: an upper estimate of its width (DejaVu Sans metrics), XML escaping, shortening, wrapping."""

from __future__ import annotations

import re
import unicodedata
from html import escape


# Advance widths of DejaVu Sans and DejaVu Sans Bold for ASCII 32..126, in thousandths of an em.
_WIDTH_REGULAR = (
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636,
    636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 632, 575, 775,
    752, 295, 295, 656, 557, 863, 748, 787, 603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390,
    337, 390, 838, 500, 500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612,
    635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
)
_WIDTH_BOLD = (
    348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365, 696, 696, 696, 696,
    696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 580, 1000, 774, 762, 734, 830, 683, 683, 821,
    837, 372, 372, 775, 637, 995, 837, 850, 733, 850, 770, 720, 682, 812, 774, 1103, 771, 724, 725, 457,
    365, 457, 838, 500, 500, 675, 716, 593, 716, 678, 435, 716, 712, 343, 343, 665, 343, 1042, 712, 687,
    716, 716, 493, 595, 478, 712, 652, 924, 645, 652, 582, 712, 365, 712, 838,
)
FONT_FAMILY = "DejaVu Sans, Verdana, Arial, Helvetica, sans-serif"

# characters XML 1.0 does not allow, even escaped (a YAML "\x01" would otherwise break the file)
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def text_width(text: str, size: float, bold: bool = False) -> float:
    """An upper estimate of the rendered width of `text` at font size `size`."""
    table = _WIDTH_BOLD if bold else _WIDTH_REGULAR
    total = 0
    for ch in text:
        code = ord(ch)
        if 32 <= code < 127:
            total += table[code - 32]
        elif unicodedata.combining(ch):
            continue
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            total += 1000
        else:
            total += 800
    return total * size / 1000


def clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def esc(text: str) -> str:
    """Text or attribute value, escaped for XML (quotes too)."""
    return escape(clean(text), quote=True)


def shorten(text: str, size: float, limit: float, bold: bool = False) -> str:
    text = clean(text)
    if text_width(text, size, bold) <= limit:
        return text
    while text and text_width(text + "…", size, bold) > limit:
        text = text[:-1]
    return text.rstrip() + "…"


def wrap(text: str, size: float, width: float) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        if lines and text_width(lines[-1] + " " + word, size) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def fmt(v: float) -> str:
    return f"{v:.1f}"
