"""Load generator (`chat-loadgen`): simulated chat users driving a running
server over loopback. Layered, each module importing only those below it:

- loadgen/run.py — a run from the parent's side, `run()` and the CLI;
- loadgen/users.py — one load process: its sockets and event loop;
- loadgen/wire.py — what the users say and hear (sans-IO);
- loadgen/spec.py — what a run is (`LoadSpec`) and its checks;
- loadgen/stats.py — the counting and the summary (`Summary`).

A caller needs only loadgen/run.py: it re-exports LoadSpec, check_spec,
Summary and percentiles.
"""
