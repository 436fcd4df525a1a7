"""The `successive` stage."""

from mape_unlearn.pipelines.successive.pipeline import create_pipeline

__all__ = ["create_pipeline"]
