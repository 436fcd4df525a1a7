"""The `sweep` stage."""

from mape_unlearn.pipelines.sweep.pipeline import create_pipeline

__all__ = ["create_pipeline"]
