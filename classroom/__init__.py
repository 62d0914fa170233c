"""Classroom demos: scenarios that start a real server, drive it, and draw
what happened (`chat-demo`), and the helpers the notebooks use.

Owns: nothing itself. The modules, top down: cli.py (the command line),
scenario.py (the registry: name -> scenario) and page.py (the index.html
every scenario's folder gets); the scenarios demos_locks.py and
tracestory.py (notebooks 01-03), demos_io.py and slowconsumer.py (04, 05),
whatif_runs.py and whatif.py (06); under them live.py (a server for a
demo), result.py (what a scenario returns) and charts.py (saving a chart).
Imports point down only. Must not: import those modules here (they pull
in matplotlib; importing the package stays cheap)."""
