"""The `train` stage."""

from mape_unlearn.pipelines.train.pipeline import create_pipeline

__all__ = ["create_pipeline"]
