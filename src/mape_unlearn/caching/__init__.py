"""Content-addressed stage caching behind a plain ``kedro run`` (make-like re-runs)."""

from mape_unlearn.caching.runner import CachingRunner

__all__ = ["CachingRunner"]
