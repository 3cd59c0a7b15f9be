"""How many SMS segments a body costs: GSM-7 when every character is in the GSM 03.38 alphabet, else UCS-2.

A single GSM-7 segment holds 160 septets (extension characters such as `{` or `€` take two), a part of a
longer message 153; UCS-2 (needed for Hindi) holds 70 UTF-16 units, 67 per part. A part never splits an
escape pair or a surrogate pair, so the counts match what a carrier bills.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
) - {"\x1b"}
GSM7_EXTENSION = set("^{}\\[~]|€\f")

SINGLE = {"GSM-7": 160, "UCS-2": 70}
PART = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True)
class Segments:
    encoding: str  # GSM-7 | UCS-2
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    count: int


def _unit_sizes(body: str) -> tuple[str, list[int]]:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body):
        return "GSM-7", [2 if ch in GSM7_EXTENSION else 1 for ch in body]
    return "UCS-2", [2 if ord(ch) > 0xFFFF else 1 for ch in body]


def count_segments(body: str) -> Segments:
    encoding, sizes = _unit_sizes(body)
    units = sum(sizes)
    if units <= SINGLE[encoding]:
        return Segments(encoding, units, 1 if units else 0)
    parts, used = 1, 0
    for size in sizes:  # fill parts greedily; a two-unit character moves whole to the next part
        if used + size > PART[encoding]:
            parts, used = parts + 1, 0
        used += size
    return Segments(encoding, units, parts)
