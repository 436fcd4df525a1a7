"""The `unlearn` stage."""

from mape_unlearn.pipelines.unlearn.pipeline import create_pipeline

__all__ = ["create_pipeline"]
