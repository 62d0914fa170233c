"""The harness: a chat server in a process of its own (harness/server.py)
and a blocking line client (harness/client.py), shared by the tests, the
benchmark and the classroom. Standard library only; never imports the
server, so it drives it as any outside program would."""

from harness.client import Client, UnexpectedReply
from harness.server import ServerProcess, reactor_argv

__all__ = ["Client", "ServerProcess", "UnexpectedReply", "reactor_argv"]
