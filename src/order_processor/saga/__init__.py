"""The saga: every command's steps decided from one read (`Snapshot`) and committed as one
fenced write through the `Ledger` port, its events published after the write. Pure
decisions (`market`, `limit`, `funds`, `orders`) and the engine that runs them."""
