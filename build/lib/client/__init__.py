"""The human chat client (`chat-client`): a prompt_toolkit REPL, or a
full-screen client with one tab per conversation (`--tui`), over one
asyncio connection that acknowledges messages and reconnects.

Layers, each importing only those below it: `cli` starts `repl` or `tui`;
both are assembled from `lines` (what a typed line means), `messages`,
`names`, `completion`, `keys`, `toolbar`, `style` and `tabs`; all of them
talk to the server only through `connection`.
"""
