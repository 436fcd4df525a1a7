"""Project CLI: ``kedro run`` as usual, with the caching runner as its default runner.

Kedro lets a project's ``cli.py`` override built-in commands. This keeps every option of
Kedro's own ``run`` (slicing, ``--only-missing-outputs``, ``--params``, ``--env`` …) and only
changes the runner used when ``--runner`` is not given. ``--runner=SequentialRunner`` restores
Kedro's stock behaviour; ``--runner-params force=true`` re-runs everything.
"""

from __future__ import annotations

import copy
import functools
import os
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run


@click.group(name="mape-unlearn")
def cli() -> None:
    """Commands of the mape-unlearn project."""


def _with_default_runner(command: click.Command, runner: str) -> click.Command:
    command = copy.copy(command)
    command.params = [copy.copy(param) for param in command.params]
    run = command.callback

    @functools.wraps(run)
    def callback(**kwargs: Any) -> Any:
        if kwargs.get("env"):  # pipelines are registered from the same environment's parameters
            os.environ["KEDRO_ENV"] = kwargs["env"]
        return run(**kwargs)

    command.callback = callback
    for param in command.params:
        if param.name == "runner":
            param.default = runner
            param.help = f"{param.help} Default: {runner} (skips up-to-date nodes)."
    return command


cli.add_command(_with_default_runner(kedro_run, "mape_unlearn.caching.CachingRunner"), "run")

# `python -m mape_unlearn` (and `torchrun -m mape_unlearn`) look for `run` in this module.
run = cli.commands["run"]
