"""Own data without traps: deletion requests as .txt / CSV lists, a holdout that never draws a
requested person, explicit holdout ids, and each environment's own data root."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.splits import hold_out_people
from tests.conftest import copy_project
from tests.test_custom_data import run_env, write_env

N_PEOPLE = 12


def _project(
    tmp_path: Path, request_name: str, request_text: str, train: dict | None = None, **data_prep
) -> Path:
    """A project copy with an env `own`: a QA file of 12 people and a deletion-request file."""
    project = copy_project(tmp_path / "project")
    qa = generate_people_qa(N_PEOPLE, seed=0)[["person_id", "question", "answer"]]
    qa.to_json(tmp_path / "qa.jsonl", orient="records", lines=True)
    (tmp_path / request_name).write_text(request_text)
    params = {
        "source": {
            "kind": "file",
            "columns": {"paraphrased_answer": None, "perturbed_answers": None},
        },
        "forget": {"from_file": True, "min_retain_rows": 1},
        **data_prep,
    }
    catalog = f"""
qa_source: {{type: mape_unlearn.datasets.UserTableDataset, path: {tmp_path / "qa.jsonl"}}}
forget_request: {{type: mape_unlearn.datasets.UserTableDataset, path: {tmp_path / request_name}}}
"""
    write_env(project, "own", {"data_prep": params, "train": train or {}}, catalog)
    return project


def _splits(project: Path) -> dict[str, set[str]]:
    primary = project / "data" / "03_primary"
    return {
        name: set(pd.read_parquet(primary / f"{name}_split.parquet").person_id)
        for name in ("forget", "holdout", "training")
    }


def _drawn_holdout(fraction: float = 0.2) -> list[str]:
    qa = generate_people_qa(N_PEOPLE, seed=0)
    return sorted(set(hold_out_people(qa, fraction, 0)[1].person_id))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("request.txt", "{a}\n\n{b}\n"),  # blank lines ignored
        ("request.csv", "{a}\n{b}\n"),  # header-less: the first id is kept
        ("request.csv", "author_id\n{a}\n{b}\n"),  # a first line not in the data is a header
    ],
)
def test_a_list_of_ids_is_the_deletion_request_and_never_held_out(
    tmp_path: Path, name: str, text: str
) -> None:
    a = _drawn_holdout()[0]  # without the request, `a` would be held out
    b = sorted({f"p{i:03d}" for i in range(N_PEOPLE)} - set(_drawn_holdout()))[0]
    project = _project(tmp_path, name, text.format(a=a, b=b))
    run_env(project, "own", "data_prep")
    splits = _splits(project)
    assert splits["forget"] == {a, b}
    assert a in splits["training"] and a not in splits["holdout"]
    assert len(splits["holdout"]) == len(_drawn_holdout())  # as many people held out


def test_explicit_holdout_ids_are_the_holdout(tmp_path: Path) -> None:
    project = _project(tmp_path, "request.txt", "p001\n", holdout={"ids": ["p004", "p007"]})
    run_env(project, "own", "data_prep")
    assert _splits(project)["holdout"] == {"p004", "p007"}


def test_holdout_ids_naming_a_requested_person_are_refused(tmp_path: Path) -> None:
    project = _project(tmp_path, "request.txt", "p004\n", holdout={"ids": ["p004"]})
    with pytest.raises(Exception, match="holdout.ids and the deletion request both name 1"):
        run_env(project, "own", "data_prep")


def test_a_drawn_holdout_with_the_users_own_model_stops_before_any_work(tmp_path: Path) -> None:
    project = _project(tmp_path, "request.txt", "p001\n", train={"original": "pretrained"})
    with pytest.raises(Exception, match=r"holdout.fraction=0.2 is not allowed with train.origi"):
        run_env(project, "own", "data_prep")
    assert not (project / "data" / "03_primary").exists()


def test_an_empty_holdout_runs_with_one_warning(tmp_path: Path, caplog) -> None:
    project = _project(tmp_path, "request.txt", "p001\n", holdout={"fraction": 0.0})
    run_env(project, "own", "data_prep")
    assert _splits(project)["holdout"] == set()
    warnings = [r for r in caplog.records if "the holdout is empty" in r.getMessage()]
    assert len(warnings) == 1


def test_a_new_request_reruns_hold_out_but_keeps_its_unchanged_splits(tmp_path: Path) -> None:
    """A request that names no drawn person re-runs hold_out (it reads the request), which
    writes the same bytes: the nodes that read only the splits stay cached."""
    project = _project(tmp_path, "request.txt", "p001\n")
    run_env(project, "own", "data_prep")
    kept = sorted({f"p{i:03d}" for i in range(N_PEOPLE)} - set(_drawn_holdout()))
    (tmp_path / "request.txt").write_text(f"{kept[1]}\n{kept[2]}\n")
    ran = run_env(project, "own", "data_prep")
    assert {"read_forget_request", "hold_out", "choose_forget"} <= ran
    records = project / "data" / "cache_manifest"
    assert json.loads((records / "training_split.json").read_text())["node"] == "hold_out"


def test_each_named_environment_has_its_own_data_root() -> None:
    from mape_unlearn.settings import config_loader
    from tests.conftest import ROOT

    roots = {}
    for env in ("local", "custom_qa", "compare", "study_deep", "smollm2_people"):
        catalog = config_loader(ROOT / "conf", env=env)["catalog"]
        roots[env] = catalog["cache_manifest"]["path"]
        assert catalog["qa_dataset"]["filepath"].startswith(
            roots[env].removesuffix("cache_manifest")
        )
    assert roots == {
        "local": "data/cache_manifest",
        "custom_qa": "data/custom_qa/cache_manifest",
        "compare": "data/compare/cache_manifest",
        "study_deep": "data/study_deep/cache_manifest",
        "smollm2_people": "data/smollm2_people/cache_manifest",
    }
