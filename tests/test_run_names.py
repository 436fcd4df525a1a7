"""Run names and tags come from what the catalog declares (``metadata.mlflow``), not from
dataset or parameter names known to the tracking code."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline

from mape_unlearn.tracking.naming import request_digest, run_names
from mape_unlearn.tracking.recorded import recording

STAGES = ("prepare", "change", "score")


def _copy(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.copy()


def _change(frame: pd.DataFrame, settings: dict) -> int:
    return len(frame) * settings["strength"]


def _score(changed: int) -> float:
    return changed / 2


def pipeline() -> Pipeline:
    """Three stages; only the last two read (or follow) the rule's parameter group."""
    return Pipeline(
        [
            Node(_copy, "users", "request_table", name="copy", tags=["prepare"]),
            Node(_change, ["request_table", "params:edit"], "edited", name="edit", tags=["change"]),
            Node(_score, "edited", "score", name="score", tags=["score"]),
        ]
    )


def catalog(request_table: MemoryDataset, **declared: dict) -> DataCatalog:
    return DataCatalog(
        {
            "users": MemoryDataset(pd.DataFrame({"user": ["u2", "u1"]})),
            "request_table": request_table,
            "edited": MemoryDataset(metadata={"mlflow": declared}),
            "params:edit": MemoryDataset({"kind": "ascent", "strength": 2}),
        }
    )


def test_request_and_method_are_read_from_the_declared_entries():
    table = pd.DataFrame({"user": ["u2", "u1", "u2"], "text": ["a", "b", "c"]})
    declared = MemoryDataset(table, metadata={"mlflow": {"request": "user"}})
    method = {"selector": "heads", "rule": "edit.kind"}
    found = catalog(declared, method=method)
    names = run_names({"pipeline_names": ["all"], "env": "dev"}, pipeline(), found, STAGES)
    assert names.name("prepare") == "prepare · dev"  # the request is read once it exists
    names = names.with_request(found)
    digest = hashlib.sha256(b"u1\nu2").hexdigest()
    assert names.request == digest
    assert names.name("all") == f"all · dev · req {digest[:6]} · heads/ascent"
    assert names.name("prepare") == f"prepare · dev · req {digest[:6]}"
    assert names.name("change") == names.name("score").replace("score", "change")
    assert names.tags("score") == {
        "env": "dev",
        "request_digest": digest,
        "selector": "heads",
        "rule": "ascent",
    }


def test_without_declarations_runs_are_named_by_pipeline_and_environment():
    table = MemoryDataset(pd.DataFrame({"user": ["u1"]}))
    found = catalog(table)
    names = run_names({"pipeline_names": None, "env": None}, pipeline(), found, STAGES)
    names = names.with_request(found)
    assert names.request is None
    assert names.name("__default__") == "__default__ · base"
    assert names.tags("change") == {"env": "base"}


def test_the_digest_is_that_of_the_distinct_sorted_ids():
    assert request_digest(["b", "a", "b"]) == hashlib.sha256(b"a\nb").hexdigest()
    assert request_digest(pd.Series([3, 1])) == request_digest(["1", "3"])


@pytest.mark.parametrize(
    "method",
    [{"selector": "heads"}, {"selector": "heads", "rule": "kind"}, "heads/ascent"],
)
def test_a_method_without_selector_and_parameter_is_refused(method: object):
    found = catalog(MemoryDataset(), method=method)
    with pytest.raises(ValueError, match=r"'edited' is .*: expected \{selector: <name>, rule:"):
        recording(found, "edited")
