"""Trace visualizer (lock contention, lock-order graphs, Perfetto): see issue 4."""
