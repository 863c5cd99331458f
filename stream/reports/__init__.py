"""Reports on history: `whatif` (two models side by side) and `review` (thresholds vs outcomes).

Both replay history with `stream.pipeline.replay.replay_lines`, the pipeline `leadstream replay`
uses, so a report says what the live worker would have done, not what a second implementation
thinks. Modules: history (input), runs (replay and attribution), whatif and review (numbers),
failif (CI gate), plots (matplotlib to SVG), html and pages (self-contained HTML).
"""
