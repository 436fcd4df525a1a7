"""The `mask_search` stage."""

from mape_unlearn.pipelines.mask_search.pipeline import create_pipeline

__all__ = ["create_pipeline"]
