"""The SQLite call store: calls, call state (sealed), node events, flow
versions, callbacks; its migrations, group commit, checkpoints and the
health of the disk under it."""
