"""Data: generated people, a user's QA or label data, splits, fact tokens, encoding."""
