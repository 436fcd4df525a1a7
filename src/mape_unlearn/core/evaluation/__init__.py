"""Evaluation: TOFU-style metrics, the evaluation protocol and the relearning attack."""
