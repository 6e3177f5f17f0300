"""Reading the call log: analytics queries, the flow graph, charts and
``ivr-report``."""
