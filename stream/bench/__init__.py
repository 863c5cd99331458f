"""`leadstream bench`: B0, P-faust and the worker side by side on one event file, one report."""
