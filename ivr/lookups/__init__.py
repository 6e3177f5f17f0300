"""Order look-ups: the order model, the embedded store with its demo data,
delivery dates, shops over HTTP and a fake shop to try them on."""
