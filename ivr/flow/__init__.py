"""The flow language: YAML with positions, the model, the loader and its
checks, prompts in a Jinja2 sandbox, expressions, business hours, the
speech matcher and the sample calls every prompt is rehearsed on."""
