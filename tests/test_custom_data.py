"""A new user's run: their QA file, deletion request and model, named only in a conf env."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from pydantic import ValidationError
from transformers import AutoModelForCausalLM

from mape_unlearn.caching import CachingRunner
from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.qa_data import to_qa_table
from mape_unlearn.core.data.splits import hold_out_people
from mape_unlearn.datasets import UserTableDataset
from mape_unlearn.params import ForgetParams, HoldoutParams, QASourceParams, TrainParams
from mape_unlearn.pipeline_registry import data_sources, evaluation_shape
from mape_unlearn.pipelines.data_prep.nodes import read_forget_request
from mape_unlearn.settings import config_loader
from tests.conftest import ROOT, copy_project, save_user_model

USERS_COLUMNS = {"person_id": "author", "question": "prompt", "answer": "response"}


def merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` merged in, key by key (Kedro's soft merge)."""
    out = dict(base)
    for key, value in changes.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = merged(base[key], value) if both else value
    return out


def write_env(project: Path, env: str, parameters: dict, catalog: str = "") -> None:
    """``conf/<env>``: the small `test` parameters with ``parameters`` merged in, ``catalog``."""
    small = yaml.safe_load((project / "conf" / "test" / "parameters.yml").read_text())
    (project / "conf" / env).mkdir()
    (project / "conf" / env / "parameters.yml").write_text(
        yaml.safe_dump(merged(small, parameters))
    )
    (project / "conf" / env / "catalog.yml").write_text(catalog)


def run_env(project: Path, env: str, pipeline: str) -> set[str]:
    """``kedro run --env=<env> --pipeline=<pipeline>`` in ``project``: the nodes that ran."""
    runner = CachingRunner()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("KEDRO_ENV", env)  # as `kedro run --env` does: the pipelines' shape
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
        bootstrap_project(project)
        with KedroSession.create(project_path=project, env=env) as session:
            session.run(pipeline_name=pipeline, runner=runner)
    return {name for name, entry in runner.plan.items() if entry.runs}


def tree_digest(path: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``path``: its SHA-256 and modification time."""
    return {
        str(f.relative_to(path)): (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
        for f in sorted(path.rglob("*"))
        if f.is_file()
    }


@pytest.fixture(scope="module")
def users_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A project copy, the user's files outside it, and one `unlearn` run naming them."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    files = tmp_path_factory.mktemp("users_files")
    qa = generate_people_qa(12, seed=0)[["person_id", "question", "answer"]]
    theirs = qa.rename(columns={ours: theirs for ours, theirs in USERS_COLUMNS.items()})
    theirs.to_json(files / "qa.jsonl", orient="records", lines=True)
    trained_on, holdout = hold_out_people(qa, 0.2, 0)  # conf/test's holdout, listed below
    forgotten = sorted(set(trained_on.person_id))[:2]
    (files / "forget.csv").write_text("author\n" + "\n".join(forgotten) + "\n")
    model = save_user_model(files / "model", [*qa.question, *qa.answer])
    before = tree_digest(model)
    write_env(
        project,
        "user",
        {
            "data_prep": {
                "source": {
                    "kind": "file",
                    "columns": {
                        **USERS_COLUMNS,
                        "paraphrased_answer": None,
                        "perturbed_answers": None,
                    },
                },
                "forget": {"from_file": True},
                # the user's own model: its holdout is listed (people it never saw), not drawn
                "holdout": {"ids": sorted(set(holdout.person_id))},
            },
            "train": {"original": "pretrained", "epochs": 5},  # machinery, not quality
        },
        f"""
_model: &model {model}
qa_source:
  type: mape_unlearn.datasets.UserTableDataset
  path: {files / "qa.jsonl"}
forget_request:
  type: mape_unlearn.datasets.UserTableDataset
  path: {files / "forget.csv"}
original_model:
  type: mape_unlearn.datasets.PretrainedModelDataset
  path: *model
  read_only: true
tokenizer:
  type: mape_unlearn.datasets.TokenizerDataset
  path: *model
  read_only: true
""",
    )
    ran = run_env(project, "user", "unlearn")
    return {
        "project": project,
        "model": model,
        "before": before,
        "forgotten": forgotten,
        "ran": ran,
    }


def test_a_users_data_and_model_are_unlearned_and_left_untouched(users_run: dict) -> None:
    project, model = users_run["project"], users_run["model"]
    ran = users_run["ran"]
    assert {"read_qa", "read_forget_request", "retrain.fit", "unlearn_model"} <= ran
    assert {"original.fit", "fit_tokenizer", "generate_qa"}.isdisjoint(ran)
    assert tree_digest(model) == users_run["before"]  # byte-identical, not even rewritten
    models = project / "data" / "06_models"
    assert not (models / "original_model").exists()
    unlearned = AutoModelForCausalLM.from_pretrained(models / "unlearned_model")
    retrain = AutoModelForCausalLM.from_pretrained(models / "retrain_model")
    users = AutoModelForCausalLM.from_pretrained(model)
    assert unlearned.config.vocab_size == retrain.config.vocab_size == users.config.vocab_size
    forget = pd.read_parquet(project / "data" / "03_primary" / "forget_split.parquet")
    assert sorted(set(forget.person_id)) == users_run["forgotten"]
    assert list(forget.columns) == ["person_id", "question", "answer", "fact"]  # derived


def test_a_second_run_reuses_everything(users_run: dict) -> None:
    assert run_env(users_run["project"], "user", "unlearn") == set()


def test_a_retain_set_too_small_stops_before_training(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    write_env(project, "small", {"data_prep": {"forget": {"min_retain_rows": 1000}}})
    with pytest.raises(Exception) as raised:
        run_env(project, "small", "train")
    assert "fewer than data_prep.forget.min_retain_rows=1000" in str(raised.value)
    assert not (project / "data" / "06_models").exists()


def test_the_custom_qa_example_is_consistent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEDRO_ENV", "custom_qa")
    assert data_sources(ROOT / "conf") == {
        "qa_source": "file",
        "forget_from_file": True,
        "original": "trained",
        "base": "directory",
        "world_facts": False,
        "retrain": True,
        "target": "retrain",
    }
    loader = config_loader(ROOT / "conf", env="custom_qa")
    params, catalog = loader["parameters"], loader["catalog"]
    source = QASourceParams(**params["data_prep"]["source"])
    ForgetParams(**params["data_prep"]["forget"])
    TrainParams(**params["train"])
    holdout = HoldoutParams(**params["data_prep"]["holdout"])
    qa = to_qa_table(
        UserTableDataset(str(ROOT / catalog["qa_source"]["path"])).load(),
        source.columns.model_dump(),
    )
    assert qa.groupby("person_id").size().to_dict() == dict.fromkeys(sorted(set(qa.person_id)), 4)
    trained_on, _ = hold_out_people(qa, holdout.fraction, holdout.seed)
    request = UserTableDataset(str(ROOT / catalog["forget_request"]["path"])).load()
    requested = read_forget_request(request, source, qa)  # a one-column list with its header
    assert requested and set(requested) <= set(trained_on.person_id)


def test_a_misspelt_shape_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = copy_project(tmp_path / "project")
    write_env(project, "typo", {"data_prep": {"source": {"kind": "files"}}})
    monkeypatch.setenv("KEDRO_ENV", "typo")
    with pytest.raises(ValidationError, match="kind"):
        data_sources(project / "conf")


def test_the_smollm2_environment_imports_its_base_and_asks_world_facts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEDRO_ENV", "smollm2_people")
    sources = data_sources(ROOT / "conf")
    assert (sources["original"], sources["base"], sources["world_facts"]) == (
        "finetuned",
        "gguf",
        True,
    )


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"data_prep": {"world_facts": True}}, r"data_prep.world_facts=True .* train.original"),
        ({"data_prep": {"world_facts": "yes"}}, r"data_prep.world_facts='yes' is not allowed"),
        ({"train": {"base": "gguf"}}, r"train.base='gguf' is not allowed with train.original"),
    ],
)
def test_world_facts_and_a_gguf_base_need_a_base_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params: dict, expected: str
) -> None:
    project = copy_project(tmp_path / "project")
    write_env(project, "worldly", params)
    monkeypatch.setenv("KEDRO_ENV", "worldly")
    with pytest.raises(ValueError, match=expected):
        data_sources(project / "conf")


def test_an_unknown_method_is_refused(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    params = project / "conf" / "base" / "parameters_evaluate.yml"
    params.write_text(params.read_text().replace("methods: [random_modules,", "methods: [xyz,"))
    with pytest.raises(ValueError, match=r"evaluate.methods=\['xyz'.*\['xyz'\] not in `baselines`"):
        evaluation_shape(project / "conf")
