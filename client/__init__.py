"""Terminal chat client (prompt_toolkit REPL and full-screen mode): see issue 5."""
