"""The worker: the batch consume loop, its stores and checkpoint, Redis snapshots, health."""
