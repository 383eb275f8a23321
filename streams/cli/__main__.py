"""`python -m streams.cli`, the same as the `ragloop` script."""

from streams.cli import app

app()
