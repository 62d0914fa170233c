"""Classroom demos: scenarios that start a real server, drive it, and draw
what happened (`chat-demo`), and the helpers the notebooks use.

Owns: nothing itself. The modules: cli.py (the command line), scenario.py
(the registry), live.py (a server for a demo), demos_locks.py and
tracestory.py (notebooks 01-03), demos_io.py and slowconsumer.py (04, 05),
whatif.py and whatif_runs.py (06). Must not: import those modules here
(they pull in matplotlib; scenario.py imports them when asked)."""
