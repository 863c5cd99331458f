"""The Faust worker: identity, scoring agent, state tables, handoffs, Redis snapshots."""
