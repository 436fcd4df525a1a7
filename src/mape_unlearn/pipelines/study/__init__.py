"""The `study` pipeline: the settings under which module-aware unlearning helps."""

from mape_unlearn.pipelines.study.pipeline import create_pipeline

__all__ = ["create_pipeline"]
