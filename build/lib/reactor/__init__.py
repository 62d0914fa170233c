"""reactor-chat: a multi-user chat server built as a teaching tool for
concurrency: one selectors reactor thread, a worker pool, named locks."""

__version__ = "0.1.0"
