"""Times as a person reads them: ns in, "4.17 ms" out.

Owns: choosing a unit (ns, µs, ms, s) for one value or for an axis, and
the text of a duration. Must not: compute statistics, draw, or write HTML;
the traces, the statistics and the JSON/CSV files stay in ns (or the µs
of lockstat) for programs, and only the words people read use this.
"""

from __future__ import annotations

#: From the largest unit down: (symbol, ns per unit).
UNITS: tuple[tuple[str, int], ...] = (("s", 1_000_000_000), ("ms", 1_000_000), ("µs", 1_000),
                                      ("ns", 1))  # fmt: skip


def unit_for(ns: float) -> tuple[str, int]:
    """The largest unit in which `ns` is at least 1 (ns for anything below
    1 µs, 0 included): an axis whose largest value is `ns` reads in it."""
    for symbol, scale in UNITS:
        if abs(ns) >= scale:
            return symbol, scale
    return UNITS[-1]


def number(value: float) -> str:
    """Three significant digits at most, no exponent: 472, 35.3, 4.17."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def duration(ns: float) -> str:
    """`ns` in the unit that fits it: 471564214 -> "472 ms", 1123 -> "1.12 µs"."""
    symbol, scale = unit_for(ns)
    if scale == 1:
        return f"{ns:.0f} ns"  # whole ns: the clock's own unit
    if abs(ns) / scale >= 999.5 and scale < UNITS[0][1]:  # would read "1000 µs"
        symbol, scale = unit_for(scale * 1000)
    return f"{number(ns / scale)} {symbol}"
