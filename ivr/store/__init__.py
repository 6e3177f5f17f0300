"""Where calls are kept: the :class:`ivr.store.protocol.CallStore` protocol
(what the server, the helpdesk sender, the reports and the dashboard need)
and its backends, one module or subpackage each: ``sqlite/`` (the product's,
with its migrations, sealed state, group commit and checkpoints),
``postgres/`` (several servers on one PostgreSQL) and ``memory`` (for tests)."""
