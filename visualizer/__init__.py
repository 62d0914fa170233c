"""The trace visualizer, `chat-viz`: reads a server's concurrency trace
(docs/trace.md) and draws lock contention, lock-order and wait-for graphs,
thread timelines and a Perfetto export."""
