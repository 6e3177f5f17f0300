"""The pure call engine: ``step()`` and its parts, the turn generator both
drivers share, and the actions it returns.  No I/O, no clock reads."""
