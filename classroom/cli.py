"""`chat-demo <scenario> -o out/`: run one classroom scenario end to end.

Owns: the command line, and the files every scenario's folder gets:
summary.json and index.html (classroom/page.py writes the page). Must not:
know what a scenario does (classroom/scenario.py lists them,
classroom/result.py says what one returns).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from classroom.page import write_index
from classroom.scenario import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    """Run the scenario `argv` names into its folder, write its summary.json
    and index.html there, and print its three lines; return the exit code
    (0). argparse exits with 2 on a bad command line."""
    p = argparse.ArgumentParser(
        prog="chat-demo",
        description="Start a chat server on a free loopback port, drive it with simulated "
        "users, stop it, and write its trace and pictures to a folder.",
    )
    p.add_argument("scenario", choices=sorted(SCENARIOS), help="what to show")
    p.add_argument("-o", "--out", type=Path, required=True, help="folder to write")
    p.add_argument("--quick", action="store_true", help="a few seconds, small numbers")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    scenario = SCENARIOS[args.scenario]
    result = scenario(args.out, quick=args.quick)
    (args.out / "summary.json").write_text(json.dumps(result.summary, indent=1, default=str))
    about = " ".join((scenario.__doc__ or "").split())
    index = write_index(result, about)
    for line in result.lines:
        print(line)
    print(f"written to {result.out}/ (open {index})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
