"""`python -m discretion.cli`: the `discretion` command without its console script."""

from discretion.cli import app

app(prog_name="discretion")
