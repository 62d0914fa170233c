"""The index.html of a report folder: headline tables, then the pictures.

Owns: the HTML: the headline numbers of `report.summarize` as labelled
tables in units a person reads (µs, ms, s), the lockstat text, and the
figures with their captions. Must not: compute statistics, draw, or
change summary.json and the CSV files, which stay in ns for programs.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from visualizer.units import duration

_STYLE = """body{font-family:sans-serif;max-width:1300px;margin:2em auto}
img{max-width:100%;border:1px solid #ccc}figure{margin:2em 0}
pre{background:#f6f6f6;padding:1em;overflow-x:auto}
table.headline{border-collapse:collapse;margin:1em 0}
table.headline th,table.headline td{border:1px solid #ccc;padding:0.25em 0.7em}
table.headline th{background:#f6f6f6;text-align:left}
table.headline td{text-align:right;font-variant-numeric:tabular-nums}"""

#: The per-command columns of the headline: (summary key, heading); times in ns.
_COMMAND_COLUMNS = (
    ("queue_p50", "queue delay p50"), ("queue_p99", "queue delay p99"),
    ("run_p50", "run time p50"), ("run_p99", "run time p99"),
)  # fmt: skip


def write_index(
    out: Path,
    title: str,
    runs: Sequence[tuple[str, dict[str, Any]]],
    pictures: Sequence[tuple[str, str]],
    table: str,
    files: Sequence[str] = (),
) -> Path:
    """Write `out`/index.html and return its path.

    Args: `runs`, one (name, summary) per trace (report.summarize), shown
    side by side; `pictures`, (file name, caption); `table`, the lockstat
    text; `files`, the data files of the folder to link (summary.json...).
    """
    esc = html.escape
    figures = "\n".join(
        f'<figure><img src="{esc(src)}" alt="{esc(cap)}">'
        f"<figcaption>{esc(cap)}</figcaption></figure>"
        for src, cap in pictures
    )
    links = ", ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in files)
    data = (
        f"<p>The same numbers for programs (ns, or µs in lockstat): {links}.</p>" if links else ""
    )
    commands = "\n".join(
        (f"<h3>{esc(name)}</h3>" if len(runs) > 1 else "") + _commands_table(s) for name, s in runs
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{_STYLE}</style></head>
<body><h1>{esc(title)}</h1>
{_headline_table(runs)}
<h2>Commands</h2>
{commands}
{data}
<h2>Lock statistics</h2><pre>{esc(table)}</pre>
{figures}
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index


def headline_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The headline of one summary as (label, value) rows, values as read."""
    s = summary
    acquired = s["lock_acquisitions"]
    contended = f"{s['contended']:,}"
    if acquired:
        contended += f" ({100 * s['contended'] / acquired:.1f} % of acquisitions)"
    sample = "every task" if s["sample"] >= 1 else f"{100 * s['sample']:g} % of tasks"
    events = f"{s['events']:,}"
    if s["skipped_lines"]:
        events += f" ({s['skipped_lines']:,} malformed lines skipped)"
    return [
        ("trace", Path(s["trace"]).name),
        ("locking", str(s["locking"])),
        ("workers", str(s["workers"])),
        ("traced", sample),
        ("duration", duration(s["seconds"] * 1e9) if s["seconds"] else "under 1 ms"),
        ("events", events),
        ("tasks", f"{s['tasks']:,}"),
        ("tasks done per second", f"{s['tasks_per_second']:,.1f}"),
        ("lock acquisitions", f"{acquired:,}"),
        ("contended", contended),
        ("lock-order violations", str(s["order_violations"])),
        ("deadlocks reported", str(s["deadlocks"])),
    ]


def _headline_table(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    esc = html.escape
    columns = [headline_rows(s) for _, s in runs]
    head = "".join(f"<th>{esc(name)}</th>" for name, _ in runs) if len(runs) > 1 else ""
    rows = [f"<tr><th></th>{head}</tr>"] if head else []
    for i, (label, _) in enumerate(columns[0]):
        cells = "".join(f"<td>{esc(col[i][1])}</td>" for col in columns)
        rows.append(f"<tr><th>{esc(label)}</th>{cells}</tr>")
    return '<table class="headline">\n' + "\n".join(rows) + "\n</table>"


def _commands_table(summary: dict[str, Any]) -> str:
    esc = html.escape
    commands: dict[str, dict[str, int]] = summary["commands"]
    if not commands:
        return "<p>No task in this trace.</p>"
    head = "".join(f"<th>{esc(h)}</th>" for _, h in _COMMAND_COLUMNS)
    rows = [f"<tr><th>command</th><th>count</th>{head}</tr>"]
    for cmd, row in commands.items():
        cells = "".join(f"<td>{esc(duration(row[key]))}</td>" for key, _ in _COMMAND_COLUMNS)
        rows.append(f"<tr><th>/{esc(cmd)}</th><td>{row['count']:,}</td>{cells}</tr>")
    return '<table class="headline">\n' + "\n".join(rows) + "\n</table>"
