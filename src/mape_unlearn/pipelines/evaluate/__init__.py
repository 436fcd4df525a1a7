"""The `evaluate` stage."""

from mape_unlearn.pipelines.evaluate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
