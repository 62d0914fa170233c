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
import socket
import ssl
import sys
from pathlib import Path

from client.connection import Account, ChatError, Connection, Disconnected
from reactor.protocol import valid_name


def state_dir() -> Path:
    """Where history and logs go ($XDG_STATE_HOME/reactor-chat)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "reactor-chat"


def build_parser() -> argparse.ArgumentParser:
    """The options of `chat-client`."""
    p = argparse.ArgumentParser(prog="chat-client", description="Terminal client for reactor-chat.")
    p.add_argument("--ip", dest="host", default="127.0.0.1", help="server address")
    p.add_argument("--host", dest="host", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=9000, help="server port")
    p.add_argument("--user", help="your name (asked if missing)")
    p.add_argument("--register", action="store_true", help="create the account first")
    p.add_argument("--no-password", action="store_true",
                   help="the server runs --auth none: log in with a name only")  # fmt: skip
    p.add_argument("--loglevel", default="WARNING", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="log level of the log file (in the state folder)")  # fmt: skip
    p.add_argument("--tui", action="store_true", help="full-screen mode, one tab per conversation")
    p.add_argument("--auto-switch", action="store_true",
                   help="--tui: show a new conversation's tab at once (Alt+S toggles)")  # fmt: skip
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
    try:
        name, password = _who(args)
    except (KeyboardInterrupt, EOFError):  # Ctrl-C or Ctrl-D at a prompt: just leave
        print(file=sys.stderr)
        return 130
    except ValueError as exc:
        print(f"chat-client: {exc}", file=sys.stderr)
        return 2
    account = Account(name, password, args.register)
    conn = Connection(args.host, args.port, account, tls_context(args))
    try:
        return asyncio.run(_run(conn, args, folder))
    except KeyboardInterrupt:
        return 130


def _who(args: argparse.Namespace) -> tuple[str, str | None]:
    """The name and password to log in with: from the options, CHAT_PASSWORD
    or prompts (a new account's password asked twice). ValueError says what
    is wrong with them; Ctrl-C and Ctrl-D at a prompt come out as
    KeyboardInterrupt and EOFError."""
    from prompt_toolkit import prompt

    name = (args.user or prompt("Name: ")).strip()
    if not valid_name(name):
        raise ValueError(f"{name!r} is not a valid name: 1-32 characters of A-Z a-z 0-9 _ . -")
    if args.no_password:
        return name, None
    password = os.environ.get("CHAT_PASSWORD")
    if password is None:
        password = prompt("Password: ", is_password=True)
        if args.register and prompt("Password again: ", is_password=True) != password:
            raise ValueError("the two passwords differ; nothing was registered")
    if not password or " " in password:
        raise ValueError("a password is one word, with no spaces")
    return name, password


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


#: How long the first connection and login may take before the client gives up.
START_SECONDS = 10.0


def start_failure(exc: BaseException, host: str, port: int, tls: bool) -> str:
    """One line saying why the first connection failed and what to do."""
    where = f"{host}:{port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing is listening on {where}: is the server running (make run)? --port?"
    if isinstance(exc, socket.gaierror):
        return f"cannot find the host {host!r}: {exc.strerror}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"{where}: the server's certificate is not trusted ({exc.verify_message}); "
                "give --cafile CERT.pem (the class's certificate), or --insecure")  # fmt: skip
    if isinstance(exc, ssl.SSLError):
        return f"{where} does not speak TLS ({exc.reason}): drop --tls"
    if isinstance(exc, TimeoutError):
        return f"{where} gave no answer in {START_SECONDS:g} s: is it a chat server?"
    if isinstance(exc, Disconnected):
        if tls:
            return f"{where} closed the connection without answering: is it a chat server?"
        return (f"{where} closed the connection without answering: if the server uses TLS, "
                "add --tls (and --cafile CERT.pem for a class certificate)")  # fmt: skip
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {exc.strerror or exc}"
    return f"cannot start: {exc}"


async def _start(conn: Connection) -> None:
    await asyncio.wait_for(conn.start(), START_SECONDS)


async def _run(conn: Connection, args: argparse.Namespace, folder: Path) -> int:
    try:
        await _start(conn)
    except (OSError, Disconnected, TimeoutError) as exc:
        await conn.close()
        print(f"chat-client: {start_failure(exc, args.host, args.port, conn.tls is not None)}",
              file=sys.stderr)  # fmt: skip
        return 1
    except ChatError as exc:
        await conn.close()
        if exc.code != "auth_failed" or conn.account.register or not sys.stdin.isatty():
            hint = " (a new name? add --register)" if exc.code == "auth_failed" else ""
            print(f"chat-client: {exc}{hint}", file=sys.stderr)
            return 1
        # A wrong password and an unknown name look alike: offer to register.
        from prompt_toolkit.shortcuts import create_confirm_session

        question = f"No such account, or a wrong password. Create {conn.account.name}?"
        if not await create_confirm_session(question).prompt_async():
            return 1
        account = Account(conn.account.name, conn.account.password, True)
        conn = Connection(args.host, args.port, account, conn.tls)
        try:
            await _start(conn)
        except ChatError as again:
            await conn.close()
            print(f"chat-client: {again}", file=sys.stderr)
            return 1
    from client.history import LineHistory, history_for

    history = LineHistory(history_for(folder, conn.user or conn.account.name))
    if args.tui:
        from client.tui import Tui

        await Tui(conn, history=history, auto_switch=args.auto_switch).run()
    else:
        from client.repl import Repl

        await Repl(conn, history=history).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
