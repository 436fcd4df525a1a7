"""kedro-mlflow's catalog pass runs only where the catalog declares one of its metric datasets:
elsewhere it would build every dataset of the catalog on each run, a no-op run included."""

from __future__ import annotations

from typing import Any

from kedro.io import DataCatalog

from mape_unlearn.hooks import GuardedMlflowHook

UNBUILDABLE = {"type": "no_such_package.NoSuchDataset"}  # fails only when built


def catalog_created(conf: dict[str, Any]) -> tuple[GuardedMlflowHook, DataCatalog]:
    hook, catalog = GuardedMlflowHook(), DataCatalog.from_config(conf)
    hook.after_catalog_created(
        catalog=catalog,
        conf_catalog=conf,
        conf_creds={},
        parameters={},
        save_version="v",
        load_versions={},
    )
    return hook, catalog


def test_a_catalog_without_metric_datasets_is_left_unbuilt():
    hook, _ = catalog_created({"table": UNBUILDABLE})
    assert not hook.failed  # kedro-mlflow did not build `table`


def test_declared_metric_datasets_are_named_by_kedro_mlflow():
    hook, catalog = catalog_created(
        {"score": {"type": "kedro_mlflow.io.metrics.MlflowMetricDataset"}}
    )
    assert catalog.get("score").key == "score"
    hook, _ = catalog_created(
        {"score": {"type": "kedro_mlflow.io.metrics.MlflowMetricDataset"}, "table": UNBUILDABLE}
    )
    assert hook.failed  # it built every dataset, `table` too, and tracking turned off
