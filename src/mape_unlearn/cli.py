"""Project CLI: ``kedro run`` as usual, with the caching runner, a summary and short errors.

Kedro lets a project's ``cli.py`` override built-in commands. This keeps every option of
Kedro's own ``run`` (slicing, ``--only-missing-outputs``, ``--params``, ``--env`` …) and changes
four things:

- the runner used when ``--runner`` is not given is the caching runner
  (``--runner=SequentialRunner`` restores Kedro's stock behaviour; ``--runner-params
  force=true`` re-runs everything);
- ``--pipeline NAME`` is ``--pipelines NAME``, without Kedro's deprecation warning;
- a finished run prints its result and where its artifacts are (``mape_unlearn.summary``);
- an error the user can fix (a parameter, a data file, a deletion request) prints its message
  and what to do, without a traceback; ``MAPE_UNLEARN_TRACEBACK=1`` shows the traceback.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

log = logging.getLogger(__name__)

TRACEBACK_ENV = "MAPE_UNLEARN_TRACEBACK"
PACKAGE_DIR = Path(__file__).resolve().parent


@click.group(name="mape-unlearn")
def cli() -> None:
    """Commands of the mape-unlearn project."""


# --- configuration errors -------------------------------------------------------------------

MISSING_FOLDER = "Given configuration path either does not exist or is not a valid directory: "
BAD_YAML = re.compile(r"Invalid YAML or JSON file (.+), unable to read line")
# an input without a catalog entry: Kedro's check before a run, or (when a hook asked the
# catalog for it first, which makes it a MemoryDataset) its load
MISSING_INPUTS = re.compile(
    r"Pipeline input\(s\) (\{.*\}) not found in the"
    r"|(.+?): Data for MemoryDataset has not been saved yet"
)
BAD_ENTRY = re.compile(r"An exception occurred when parsing config for dataset '(.+?)':\n(.+)")


def _shown(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    here = Path.cwd()
    absolute = here / path  # an absolute ``path`` stays as it is
    return str(absolute.relative_to(here) if absolute.is_relative_to(here) else absolute)


def _catalog_line(entry: str, env: str) -> str:
    """Where ``entry`` is defined: ``conf/<env>/catalog.yml, line 12`` (``env`` wins over
    ``base``, as in Kedro's merge), or ``""`` when no catalog file names it (a pattern entry)."""
    from mape_unlearn.pipeline_registry import project_conf_source

    key = re.compile(rf"^[\"']?{re.escape(entry)}[\"']?\s*:")
    for folder in (env, "base"):
        for path in sorted((project_conf_source() / folder).glob("**/catalog*.y*ml")):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if key.match(line):
                    return f"{_shown(path)}, line {number}"
    return ""


def _missing_environment(folder: Path) -> tuple[str, str]:
    """An environment (``--env``, ``KEDRO_ENV``, or ``local`` by default) without a folder."""
    if not folder.parent.is_dir():
        return f"no configuration folder {_shown(folder.parent)}", (
            "Run kedro in the project's folder (or below it): its conf/ holds base/ and one "
            "folder per environment."
        )
    known = sorted(path.name for path in folder.parent.glob("*/") if path.name != "base")
    if folder.name == "local":
        advice = f"Create the folder {_shown(folder)} (this machine's settings; it may be empty)."
    else:
        advice = f"Choose one of {_shown(folder.parent)}/ (--env=NAME): {', '.join(known)}."
    return f"the environment {folder.name!r} has no folder {_shown(folder)}", advice


def _invalid_yaml(error: BaseException, file: str) -> tuple[str, str]:
    """A configuration file that is not YAML: the file, line and column of the problem."""
    import yaml

    marked = [link for link in _chain(error) if isinstance(link, yaml.MarkedYAMLError)]
    inner = next((link for link in reversed(marked) if link.problem_mark is not None), None)
    message = f"{_shown(file)} is not valid YAML"
    if inner is not None:
        mark = inner.problem_mark
        message += f": line {mark.line + 1}, column {mark.column + 1}: {inner.problem}"
        if inner.context and inner.context_mark is not None:
            message += f" ({inner.context} from line {inner.context_mark.line + 1})"
    return message, (
        "Fix the syntax there (indentation, a ':' after each key, closing brackets and "
        "quotes); what each parameter means: the comments of conf/base."
    )


def config_error(error: BaseException, env: str | None = None) -> tuple[str, str] | None:
    """``(message, what to do)`` when the configuration of environment ``env`` (default:
    ``KEDRO_ENV``, else ``local``) cannot be read or built: an environment without a folder, a
    file that is not YAML, an input no catalog entry defines, or an entry Kedro cannot build
    (an unknown ``type`` among them); else ``None``."""
    from kedro.config import MissingConfigException
    from kedro.io import DatasetError

    env = env or os.environ.get("KEDRO_ENV") or "local"
    for link in _chain(error):
        text = str(link)
        if isinstance(link, MissingConfigException) and text.startswith(MISSING_FOLDER):
            return _missing_environment(Path(text.removeprefix(MISSING_FOLDER).split(". ")[0]))
        if (bad_yaml := BAD_YAML.match(text)) is not None:
            return _invalid_yaml(link, bad_yaml.group(1))
        if isinstance(link, ValueError | DatasetError) and (missing := MISSING_INPUTS.match(text)):
            names = re.findall(r"'([^']+)'", missing.group(1) or "") or [missing.group(2)]
            return f"no catalog entry defines {', '.join(names)}, which the pipeline reads", (
                f"Add an entry to conf/{env}/catalog.yml (a file of yours: as in "
                "conf/custom_qa/catalog.yml, docs/own-data.md), or run an environment that has "
                "one (--env=NAME)."
            )
        if isinstance(link, DatasetError) and (entry := BAD_ENTRY.match(text)):
            name, reason = entry.groups()
            where = _catalog_line(name, env)
            return f"the catalog entry {name!r}{f' ({where})' if where else ''}: {reason}", (
                "Use a `type:` of mape_unlearn.datasets or kedro-datasets (e.g. "
                "pandas.CSVDataset) with the arguments it takes: docs/own-data.md."
            )
    return None


# --- errors a user can act on -------------------------------------------------------------


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and its causes, outermost first."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _raised_by_project(error: BaseException) -> bool:
    """Whether the innermost frame of the error's traceback is in this package's own code."""
    tb: TracebackType | None = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)


def _node_name(error: BaseException) -> str | None:
    """The name of the Kedro node the error was raised in, read from the traceback's frames."""
    from kedro.pipeline import Node

    name = None
    for link in _chain(error):
        tb = link.__traceback__
        while tb is not None:
            node = tb.tb_frame.f_locals.get("self")
            if isinstance(node, Node):
                name = node.name
            tb = tb.tb_next
    return name


def _parameter_messages(text: str) -> list[str]:
    """One line per invalid field of Kedro's ``ParameterValidationError`` (pydantic's text).

    ``- Parameter 'unlearn': Failed to instantiate … 1 validation error for UnlearnSettings``
    ``lr`` / ``  Input should be greater than 0 [type=greater_than, input_value='nan', …]``
    becomes ``unlearn.lr='nan': Input should be greater than 0``; a project validator's own
    message (``Value error, sparsity=1.5 is not allowed: …``) is kept as it is written.
    """
    messages, group, field = [], "", ""
    for line in text.splitlines():
        if line.startswith("- Parameter '"):
            group = line.split("'")[1]
            rest = line.split(": ", 1)[1] if ": " in line else ""
            if "validation error" not in rest:  # not pydantic's: keep Kedro's sentence
                messages.append(f"{group}: {rest}")
        elif line.startswith("    ") or not line.strip() or "validation error" in line:
            continue  # pydantic's "For further information visit …"
        elif line.startswith("  "):
            message, _, detail = line.strip().partition(" [type=")
            if message.startswith("Value error, "):
                messages.append(f"{group}: {message.removeprefix('Value error, ')}")
                continue
            value = detail.partition("input_value=")[2].partition(", input_type=")[0]
            where = f"{group}.{field}" if field else group
            messages.append(f"{where}={value}: {message}" if value else f"{where}: {message}")
        elif not line.startswith("Parameter validation failed"):
            field = line.strip()
    return messages


def user_error(error: BaseException, env: str | None = None) -> tuple[str, str] | None:
    """``(message, what to do)`` when the error is one the user can fix, else ``None``.

    User errors: the configuration of ``env`` (:func:`config_error`), Kedro's parameter
    validation (the typed models of ``params.py``), pydantic's ``ValidationError``, an unknown
    pipeline name, and a ``ValueError`` or ``FileNotFoundError`` raised by this project's own
    code (its data checks, datasets and parameter checks name the parameter, the value and
    what is allowed). The same exception types raised inside a library are bugs to report, not
    user errors: their traceback is shown.
    """
    from kedro.validation import ParameterValidationError
    from pydantic import ValidationError

    found = config_error(error, env)
    if found is not None:
        return found
    for link in _chain(error):
        if isinstance(link, ParameterValidationError):
            fields = _parameter_messages(str(link)) or [str(link)]
            return "\n".join(fields), (
                "Fix the value in conf/<env>/parameters_*.yml or in --params (before any node "
                "ran); what each parameter allows: src/mape_unlearn/params.py."
            )
        if isinstance(link, ValidationError):
            return str(link).split("\n    For further", 1)[0], (
                "Fix the value in conf/<env>/parameters_*.yml or in --params; what each "
                "parameter allows: src/mape_unlearn/params.py."
            )
        if isinstance(link, ValueError) and str(link).startswith("Failed to find the pipeline"):
            return str(link).split(". ", 1)[0], "The registered pipelines: kedro registry list."
        if isinstance(link, ValueError | FileNotFoundError) and _raised_by_project(link):
            node = _node_name(error)
            where = f" (in node {node})" if node else ""
            return f"{link}{where}", "Causes and fixes: docs/troubleshooting.md."
    return None


def _report(message: str, advice: str) -> None:
    """The error and what to do, wrapped to 80 columns, on stderr."""
    lines = []
    for number, paragraph in enumerate(message.splitlines()):
        prefix = "Error: " if number == 0 else "  "
        lines += textwrap.wrap(paragraph, 80, initial_indent=prefix, subsequent_indent="  ")
    lines += textwrap.wrap(advice, 80)
    lines.append(f"(Full traceback: {TRACEBACK_ENV}=1 kedro run …)")
    click.echo("\n".join(lines), err=True)


# --- the summary at the end of a run --------------------------------------------------------


def _mlflow_run() -> str | None:
    """``<run id> (experiment '<name>')`` of this process's last MLflow run, if any."""
    try:
        import mlflow

        run = mlflow.last_active_run()
        if run is None:
            return None
        experiment = mlflow.get_experiment(run.info.experiment_id)
        name = f"experiment '{experiment.name}'" if experiment else "experiment ?"
        return f"{run.info.run_id} ({name}): kedro mlflow ui"
    except Exception:  # tracking is optional; a summary without it is still a summary
        return None


def _print_summary(kwargs: dict[str, Any]) -> None:
    """Print what the run produced and where it is, read back through the catalog."""
    from kedro.framework.context import KedroContext
    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.framework.project import PACKAGE_NAME, pipelines, settings
    from kedro.utils import find_kedro_project

    from mape_unlearn.summary import summary_lines

    root = Path(find_kedro_project(Path.cwd()) or Path.cwd())
    names = kwargs.get("pipelines") or ["__default__"]
    outputs = set().union(*(pipelines[name].all_outputs() for name in names if name in pipelines))
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=kwargs.get("conf_source") or str(root / settings.CONF_SOURCE),
        env=kwargs.get("env"),
        runtime_params=kwargs.get("params"),
        **settings.CONFIG_LOADER_ARGS,
    )
    context = KedroContext(  # no project hooks: reading the artifacts tracks nothing
        package_name=PACKAGE_NAME,
        project_path=root,
        config_loader=loader,
        hook_manager=_create_hook_manager(),
        env=kwargs.get("env"),
        runtime_params=kwargs.get("params"),
    )
    lines = summary_lines(context.catalog, outputs, root, _mlflow_run())
    if lines:
        click.echo("\n".join(lines))


# --- the command ----------------------------------------------------------------------------


def _project_run(command: click.Command, runner: str) -> click.Command:
    command = copy.copy(command)
    command.params = [copy.copy(param) for param in command.params]
    run = command.callback

    @functools.wraps(run)
    def callback(**kwargs: Any) -> Any:
        if kwargs.get("env"):  # pipelines are registered from the same environment's parameters
            os.environ["KEDRO_ENV"] = kwargs["env"]
        if kwargs.get("pipeline") and not kwargs.get("pipelines"):
            kwargs["pipelines"], kwargs["pipeline"] = [kwargs["pipeline"]], None
        try:
            result = run(**kwargs)
        except Exception as error:
            traceback = os.environ.get(TRACEBACK_ENV, "") not in ("", "0")
            found = None if traceback else user_error(error, kwargs.get("env"))
            if found is None:
                raise
            _report(*found)
            raise click.exceptions.Exit(1) from None
        if int(os.environ.get("RANK", "0")) == 0:
            try:
                _print_summary(kwargs)
            except Exception as error:  # the run succeeded: a summary must not fail it
                log.warning("no summary printed: %r", error)
        return result

    command.callback = callback
    for param in command.params:
        if param.name == "runner":
            param.default = runner
            param.help = f"{param.help} Default: {runner} (skips up-to-date nodes)."
        elif param.name == "pipeline":
            param.help = "Name of the registered pipeline to run (= --pipelines NAME)."
    return command


cli.add_command(_project_run(kedro_run, "mape_unlearn.caching.CachingRunner"), "run")

# `python -m mape_unlearn` (and `torchrun -m mape_unlearn`) look for `run` in this module.
run = cli.commands["run"]
