"""The index.html of a demo's folder: the page `chat-demo` leaves for a
person to open first, the same for every scenario.

Owns: that page: what the scenario is, its three lines, its text tables,
every picture of the folder with its caption, a link to its visualizer
report (whose own index.html shows the trace's pictures) and to the
folder's data files. Must not: run, measure or draw anything, or import a
scenario module or the registry (it reads a classroom/result.py
`RunResult` and the folder it names).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from classroom.result import RunResult

#: The files of a demo's folder the page links as data: traces, numbers, tables.
DATA_SUFFIXES = frozenset({".json", ".jsonl", ".txt", ".md", ".csv"})

_STYLE = """body{font-family:sans-serif;max-width:1300px;margin:2em auto;line-height:1.4}
img{max-width:100%;border:1px solid #ccc}figure{margin:2em 0}
pre{background:#f6f6f6;padding:1em;overflow-x:auto}li{margin:0.3em 0}"""


def write_index(result: RunResult, about: str = "") -> Path:
    """Write `result.out`/index.html and return its path.

    The page shows `about` (what the scenario does), the three lines,
    `result.tables`, then `result.pictures` with their captions and after
    them every other .png of the folder under its file name, so no picture
    is left off; it links `result.report`'s index.html and the folder's
    data files (DATA_SUFFIXES)."""
    esc, out = html.escape, result.out
    named = {name for name, _ in result.pictures}
    pictures = [*result.pictures]
    pictures += [(p.name, p.name) for p in sorted(out.glob("*.png")) if p.name not in named]
    figures = "\n".join(
        f'<figure><img src="{esc(src)}" alt="{esc(cap)}"><figcaption>{esc(cap)}</figcaption>'
        "</figure>"
        for src, cap in pictures
    )
    lines = "\n".join(f"<li>{esc(line)}</li>" for line in result.lines)
    tables = "\n".join(
        f"<h2>{esc(head)}</h2><pre>{esc(text.rstrip()) or '(nothing)'}</pre>"
        for head, text in result.tables
    )
    report = ""
    if result.report is not None:
        href = esc(Path(os.path.relpath(result.report / "index.html", out)).as_posix())
        report = f'<p>The full report of the trace: <a href="{href}">{href}</a>.</p>'
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.suffix in DATA_SUFFIXES)
    data = ", ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in files)
    title = f"chat-demo {result.scenario}"
    about = f"<p>{esc(about)}</p>" if about else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{_STYLE}</style></head>
<body><h1>{esc(title)}</h1>
{about}
<ul>
{lines}
</ul>
{report}
{tables}
{figures}
<p>The files of this run: {data or "none"}.</p>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
