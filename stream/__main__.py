"""`python -m stream` is the `leadstream` command (used to start child processes)."""

from stream.cli import main

main()
