"""The `train` stage."""

from mape_unlearn.pipelines.train.pipeline import create_pipeline, create_retrain_pipeline

__all__ = ["create_pipeline", "create_retrain_pipeline"]
