"""The `importance` stage."""

from mape_unlearn.pipelines.importance.pipeline import create_pipeline

__all__ = ["create_pipeline"]
