"""`chat-viz`: the visualizer's command line (options and wiring only).

    chat-viz report run.jsonl -o report/ [--window 100:250] [--at 180] [--commands send]
    chat-viz perfetto run.jsonl -o run.perfetto.json
    chat-viz compare global.jsonl fine.jsonl -o cmp/
    chat-viz stats run.jsonl

Times on the command line are milliseconds since the trace start.
"""

from __future__ import annotations

import argparse
import sys

from visualizer.load import TraceError, load_trace

MS = 1_000_000


def _window(text: str) -> tuple[int, int]:
    try:
        start, end = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:END in ms, got {text!r}") from None
    if not 0 <= start < end:
        raise argparse.ArgumentTypeError(f"need 0 <= START < END, got {text!r}")
    return int(start * MS), int(end * MS)


def _commands(text: str) -> frozenset[str]:
    names = frozenset(c.strip().lstrip("/") for c in text.split(",") if c.strip().lstrip("/"))
    if not names:
        raise argparse.ArgumentTypeError(
            f"expected command names like send,sendgroup, got {text!r}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    """The `chat-viz` parser: one subcommand per verb, each with its trace files."""
    p = argparse.ArgumentParser(prog="chat-viz", description="Pictures of a reactor-chat trace.")
    sub = p.add_subparsers(dest="verb", required=True)

    def trace_arg(sp: argparse.ArgumentParser, name: str = "trace") -> None:
        sp.add_argument(name, help="trace file written by chat-server --trace")

    r = sub.add_parser("report", help="every picture, the numbers, and an index.html")
    trace_arg(r)
    r.add_argument("-o", "--out", required=True, help="report folder (created)")
    r.add_argument("--window", type=_window, help="timeline from START to END ms")
    r.add_argument("--at", type=float, help="instant (ms) of the wait-for graph")
    r.add_argument(
        "--commands",
        type=_commands,
        metavar="CMD,CMD",
        help="commands blame.png shows, e.g. send,sendgroup (default: all, with /register "
        "and /login, slow by design, in a panel of their own)",
    )
    pf = sub.add_parser("perfetto", help="Chrome Trace Event JSON for ui.perfetto.dev")
    trace_arg(pf)
    pf.add_argument("-o", "--out", required=True, help="output .json file")
    c = sub.add_parser("compare", help="two runs side by side")
    trace_arg(c, "a")
    trace_arg(c, "b")
    c.add_argument("-o", "--out", required=True, help="report folder (created)")
    s = sub.add_parser("stats", help="print the lockstat table")
    trace_arg(s)
    for sp in (r, pf, c, s):
        sp.add_argument(
            "--skip-bad", action="store_true", help="skip malformed lines (count them), go on"
        )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the verb `argv` names; return the exit code: 0, or 1 (with a
    message on stderr) for a bad trace or a file that cannot be read or
    written. argparse exits with 2 on a bad command line."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except TraceError as exc:
        print(f"chat-viz: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"chat-viz: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from visualizer import report, stats  # matplotlib only for the verbs that draw

    if args.verb == "compare":
        a, b = load_trace(args.a, args.skip_bad), load_trace(args.b, args.skip_bad)
        index = report.write_compare(a, b, args.out)
        print(f"wrote {index}")
        return 0
    trace = load_trace(args.trace, args.skip_bad)
    if trace.skipped:
        print(f"chat-viz: skipped {trace.skipped} malformed lines", file=sys.stderr)
    if args.verb == "stats":
        print(stats.lockstat_text(stats.lockstat(trace)))
    elif args.verb == "perfetto":
        from visualizer.perfetto import write_chrome

        write_chrome(trace, args.out)
        print(f"wrote {args.out}: open it at https://ui.perfetto.dev (Open trace file)")
    else:
        at = None if args.at is None else int(args.at * MS)
        index = report.write_report(trace, args.out, args.window, at, args.commands)
        print(f"wrote {index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
