"""Classroom demos: scenarios that start a real server, drive it, and draw
what happened (`chat-demo`), and the helpers the notebooks use."""
