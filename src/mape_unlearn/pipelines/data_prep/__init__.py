"""The `data_prep` stage."""

from mape_unlearn.pipelines.data_prep.pipeline import create_pipeline

__all__ = ["create_pipeline"]
