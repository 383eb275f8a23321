"""`ragloop` command line: run the loop, run one role, and talk to it (ingest, ask, publish).

With the default `memory://` broker, commands that need work done start the roles they need in
this process; with `kafka://` they publish events and follow the results in the shared database.
"""

from __future__ import annotations

from typing import Annotated

import typer

from streams.cli.chat import ask
from streams.cli.config import config_app
from streams.cli.dlq import dlq_app
from streams.cli.documents import ingest, publish
from streams.cli.evaluate import eval_app
from streams.cli.models import models_app
from streams.cli.report import report
from streams.cli.search import search
from streams.cli.serve import up, worker
from streams.cli.soak import soak
from streams.cli.topics import topics_app
from streams.cli.train import train
from streams.logging import configure_logging

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_show_locals=False)
for command in (up, worker, publish, ingest, ask, search, soak, report, train):
    app.command()(command)
app.add_typer(topics_app, name="topics")
app.add_typer(models_app, name="models")
app.add_typer(eval_app, name="eval")
app.add_typer(dlq_app, name="dlq")
app.add_typer(config_app, name="config")


@app.callback()
def main(log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING…", envvar="RAGLOOP_LOG_LEVEL")] = "WARNING") -> None:
    configure_logging(log_level)
