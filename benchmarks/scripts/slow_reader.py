"""What a reader that stops reading costs the server: bytes held after a burst.

    .venv/bin/python -m benchmarks.scripts.slow_reader --messages 2500 --max-outbuf 65536

Starts a server (`--root`: another checkout's, for a before/after in one
sitting) with `--max-outbuf`, logs in `bob` on a connection whose receive
buffer is 4 KiB and which never reads, and has `alice` send him one burst of
`--messages` private messages of `--text-bytes` each, waiting for every
`ok`. Then it reports what the server holds for bob: the resident memory it
grew by, `/stats` `queued_bytes` where the server reports it, whether bob
was dropped (`slow_consumers`, his `bye`), and that every message is still
there for his next login.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness import Client, ServerProcess, reactor_argv


def main(argv: list[str] | None = None) -> int:
    """Run the burst; print the figures; 0 when bob got every message on re-login."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2500)
    ap.add_argument("--text-bytes", type=int, default=3000)
    ap.add_argument("--max-outbuf", type=int, default=65536)
    ap.add_argument("--model", default="reactor")
    ap.add_argument("--root", type=Path, default=None, help="checkout whose server runs")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="slow-reader-") as tmp:
        server_args = ["--max-outbuf", str(args.max_outbuf), "--rate-limit", "0",
                       "--model", args.model]  # fmt: skip
        extra = {"cwd": args.root} if args.root else {}
        with ServerProcess(argv=reactor_argv(Path(tmp) / "chat.db", *server_args), **extra) as srv:
            alice = srv.client()
            alice.ok("/register alice pw")
            alice.ok("/login alice pw")
            alice.ok("/register bob pw")
            bob = Client(srv.addr, rcvbuf=4096)
            bob.ok("/login bob pw")
            rss0 = srv.rss_kib()
            line = f"/send bob {'q' * args.text_bytes}\n".encode()
            alice.sock.sendall(line * args.messages)
            ids = [alice.reply()["id"] for _ in range(args.messages)]
            conns = alice.ok("/stats")["connections"]
            grew = srv.rss_kib() - rss0
            bob.sock.settimeout(5)
            try:
                tail = bob.until_closed()[-1:]
            except TimeoutError:
                tail = ["(still open after 5 s)"]
            again = srv.client()
            unread = again.ok("/login bob pw")["unread"]
            replayed = [m["id"] for m in again.messages(unread)] if unread else []
    queued = conns.get("queued_bytes", "not reported")
    print(f"server: {args.root or 'this checkout'}, --model {args.model},"
          f" --max-outbuf {args.max_outbuf}")  # fmt: skip
    print(f"burst: {args.messages} messages x {args.text_bytes} bytes to a reader that never reads")
    print(f"held after the burst: queued_bytes {queued}, server RSS grew {grew} KiB")
    print(f"slow_consumers {conns.get('slow_consumers')}; bob's last line: {tail[0].strip()}")
    ok = replayed == ids
    print(f"re-login: unread {unread}, replayed in order: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
