"""The `unlearn` stage."""

from mape_unlearn.pipelines.unlearn.pipeline import create_baseline_pipeline, create_pipeline

__all__ = ["create_baseline_pipeline", "create_pipeline"]
