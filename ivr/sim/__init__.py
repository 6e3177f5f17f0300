"""``ivr-sim``: calls played offline or against a server, scenario files,
utterance sets and the traffic generator."""
