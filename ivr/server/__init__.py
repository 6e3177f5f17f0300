"""The Twisted service: web resources, the call handler, the flow
registry, helpdesk tickets, texts, the dashboard, logs and ``ivr-serve``."""
