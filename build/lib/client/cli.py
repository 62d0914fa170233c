"""`chat-client`: options, the password, logging to a file, then the REPL
(or the full-screen mode with --tui).

Owns: argument parsing and start-up. Must not: contain UI or protocol code.
The password comes from the environment variable CHAT_PASSWORD or a hidden
prompt, never from the command line (other users can read it in `ps`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from client.connection import Account, ChatError, Connection

if TYPE_CHECKING:
    from prompt_toolkit.history import History


def state_dir() -> Path:
    """Where history and logs go ($XDG_STATE_HOME/reactor-chat)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "reactor-chat"


def file_history(path: Path) -> History:
    """The typed lines kept in the file `path` (its folder made if missing)."""
    from prompt_toolkit.history import FileHistory

    path.parent.mkdir(parents=True, exist_ok=True)
    return FileHistory(str(path))


def build_parser() -> argparse.ArgumentParser:
    """The options of `chat-client`."""
    p = argparse.ArgumentParser(prog="chat-client", description="Terminal client for reactor-chat.")
    p.add_argument("--ip", default="127.0.0.1", help="server address")
    p.add_argument("--port", type=int, default=9000, help="server port")
    p.add_argument("--user", help="your name (asked if missing)")
    p.add_argument("--register", action="store_true", help="create the account first")
    p.add_argument("--no-password", action="store_true",
                   help="the server runs --auth none: log in with a name only")  # fmt: skip
    p.add_argument("--loglevel", default="WARNING", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="log level of the log file (in the state folder)")  # fmt: skip
    p.add_argument("--tui", action="store_true", help="full-screen mode, one tab per conversation")
    p.add_argument(
        "--tls", action="store_true", help="the server speaks TLS (certificate verified)"
    )
    p.add_argument("--cafile", help="trust this certificate (PEM), e.g. a class's self-signed one")
    p.add_argument(
        "--insecure", action="store_true", help="TLS without checking the certificate (unsafe)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run `chat-client` with `argv` (the command line by default); the exit code."""
    args = build_parser().parse_args(argv)
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    # Logs go to a file: the terminal belongs to the prompt.
    logging.basicConfig(filename=folder / "client.log", level=args.loglevel,
                        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")  # fmt: skip
    from prompt_toolkit import prompt

    name = args.user or prompt("Name: ")
    password = None
    if not args.no_password:
        password = os.environ.get("CHAT_PASSWORD") or prompt("Password: ", is_password=True)
    conn = Connection(args.ip, args.port, Account(name, password, args.register), tls_context(args))
    try:
        return asyncio.run(_run(conn, args, folder))
    except KeyboardInterrupt:
        return 130


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """Verify the server's certificate (system CAs, or --cafile) unless
    --insecure, which is loud about it."""
    if not (args.tls or args.cafile or args.insecure):
        return None
    context = ssl.create_default_context(cafile=args.cafile)
    if args.insecure:
        print("chat-client: WARNING: --insecure: the server's certificate is NOT checked; "
              "anyone on the path can read and change your chat", file=sys.stderr)  # fmt: skip
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _run(conn: Connection, args: argparse.Namespace, folder: Path) -> int:
    try:
        await conn.start()
    except OSError as exc:
        print(f"chat-client: cannot reach {args.ip}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except ChatError as exc:
        await conn.close()
        if exc.code != "auth_failed" or conn.account.register or not sys.stdin.isatty():
            print(f"chat-client: {exc}", file=sys.stderr)
            return 1
        # A wrong password and an unknown name look alike: offer to register.
        from prompt_toolkit.shortcuts import create_confirm_session

        question = f"No such account, or a wrong password. Create {conn.account.name}?"
        if not await create_confirm_session(question).prompt_async():
            return 1
        account = Account(conn.account.name, conn.account.password, True)
        conn = Connection(args.ip, args.port, account, conn.tls)
        try:
            await conn.start()
        except ChatError as again:
            await conn.close()
            print(f"chat-client: {again}", file=sys.stderr)
            return 1
    history = file_history(folder / "history")
    if args.tui:
        from client.tui import Tui

        await Tui(conn, history=history).run()
    else:
        from client.repl import Repl

        await Repl(conn, history=history).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
