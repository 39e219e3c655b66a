"""The agent layer: protocol, routing, turns, the event bus and log."""
