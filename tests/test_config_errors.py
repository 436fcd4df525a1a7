"""A configuration that cannot be read stops `kedro run` in a few lines that say what is wrong,
where and what to do, and stops the pipeline registry rather than letting it guess a shape."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from kedro.config import MissingConfigException
from kedro.framework.startup import bootstrap_project

from mape_unlearn.cli import TRACEBACK_ENV, cli
from mape_unlearn.pipeline_registry import STAGES, register_pipelines
from mape_unlearn.pipelines import study
from tests.conftest import copy_project
from tests.test_cli import kedro_run
from tests.test_custom_data import write_env

MAX_LINES = 10
BROKEN_YAML = "unlearn:\n  lr: [1, 2\n  max_steps: 3\n"  # the list is never closed


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy with three broken environments (the tests only read them)."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    (project / "conf" / "broken_yaml").mkdir()
    (project / "conf" / "broken_yaml" / "parameters.yml").write_text(BROKEN_YAML)
    source = {"data_prep": {"source": {"kind": "file"}}}
    write_env(project, "no_entry", source)  # the QA file, `qa_source`, has no entry
    typo = "qa_source:\n  type: mape_unlearn.datasets.UserTableDatset\n  path: qa.jsonl\n"
    write_env(project, "typo", source, catalog=typo)
    return project


def kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    """A real ``kedro run …`` in ``project``, the environment named by ``args``."""
    return kedro_run(project, *args, kedro_env=None)


def run_in_process(project: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """``kedro run …`` through the project's CLI in this process (its exit status 1 checked);
    the error it printed, from ``Error:`` on."""
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    monkeypatch.delenv("KEDRO_ENV", raising=False)  # the CLI sets it from --env
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    bootstrap_project(project)
    result = CliRunner().invoke(cli, ["run", *args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output[result.output.index("Error: ") :]


def test_an_unknown_environment_names_the_folder_and_the_environments(project):
    result = kedro(project, "--env=nosuchenv", "--pipeline=data_prep")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) <= MAX_LINES, result.stdout
    assert "Traceback" not in result.stdout
    words = " ".join(result.stdout.split())  # wrapped to 80 columns
    assert "Error: the environment 'nosuchenv' has no folder conf/nosuchenv" in words
    choices = words.split("(--env=NAME): ")[1]  # what to choose from: every environment
    assert all(name in choices for name in ("custom_qa", "local", "minilm_classification"))
    assert "base" not in choices
    assert not (project / "data").exists()  # nothing ran


def test_a_yaml_syntax_error_names_the_file_and_line(project):
    result = kedro(project, "--env=broken_yaml", "--pipeline=data_prep")
    assert result.returncode == 1
    assert len(result.stdout.strip().splitlines()) <= MAX_LINES, result.stdout
    assert "Traceback" not in result.stdout
    words = " ".join(result.stdout.split())
    assert "Error: conf/broken_yaml/parameters.yml is not valid YAML: line 3" in words
    assert "did not find expected ',' or ']'" in words and "from line 2" in words


def test_a_missing_catalog_entry_is_named_with_where_to_add_it(project, monkeypatch):
    error = run_in_process(project, monkeypatch, "--env=no_entry", "--pipeline=data_prep")
    assert len(error.splitlines()) <= MAX_LINES, error
    words = " ".join(error.split())
    assert "Error: no catalog entry defines qa_source, which the pipeline reads" in words
    assert "conf/no_entry/catalog.yml" in words


def test_an_unknown_dataset_type_names_the_entry_file_and_line(project, monkeypatch):
    error = run_in_process(project, monkeypatch, "--env=typo", "--pipeline=data_prep")
    assert len(error.splitlines()) <= MAX_LINES, error
    words = " ".join(error.split())
    assert "Error: the catalog entry 'qa_source' (conf/typo/catalog.yml, line 1)" in words
    assert "'UserTableDatset' not found in 'mape_unlearn.datasets'" in words
    assert "docs/own-data.md" in words  # what to do


def test_the_traceback_variable_shows_a_configuration_error_whole(project, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    bootstrap_project(project)
    result = CliRunner().invoke(cli, ["run", "--env=nosuchenv"])
    assert isinstance(result.exception, MissingConfigException)


# ------------------------------------------------------------------ the registry


def registered(project: Path, env: str, folder: str = ".") -> dict:
    """The pipelines registered for ``env``, asked from ``folder`` of ``project``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project / folder)
        patch.setenv("KEDRO_ENV", env)
        return register_pipelines()


def test_the_registry_stops_when_the_configuration_cannot_be_read(project):
    with pytest.raises(MissingConfigException, match="nosuchenv"):
        registered(project, "nosuchenv")
    with pytest.raises(yaml.YAMLError, match="broken_yaml/parameters.yml"):
        registered(project, "broken_yaml")


def test_the_registry_reads_the_project_above_the_working_folder(tmp_path):
    project = copy_project(tmp_path / "project")
    write_env(project, "one_method", {"evaluate": {"methods": ["full"]}})
    (project / "notebooks").mkdir()
    outputs = registered(project, "one_method", "notebooks")["evaluate"].all_outputs()
    assert "full_model" in outputs and "random_modules_model" not in outputs


@pytest.mark.parametrize("name", [*STAGES, "study"])
def test_a_misspelt_shape_argument_fails_registration(name):
    stage = study if name == "study" else STAGES[name]
    with pytest.raises(TypeError, match="retrian"):
        stage.create_pipeline(retrian=False)
