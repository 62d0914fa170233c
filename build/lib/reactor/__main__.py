"""`python -m reactor`: the same as the `chat-server` command."""

from reactor.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
