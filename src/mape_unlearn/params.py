"""Typed parameters of every stage, validated by Kedro before any node runs.

Each model mirrors one ``conf/base/parameters_<stage>.yml`` group; a bad value fails the run
up front with the parameter's name, the value given and what is allowed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

from mape_unlearn.core.search import OBJECTIVES
from mape_unlearn.core.unlearning import RULES


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataPrepParams(_Params):
    n_people: PositiveInt = 100
    seed: int = 0
    holdout_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    forget_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    forget_ids: list[str] | None = None


class TrainParams(_Params):
    model_type: str = "gpt2"
    architecture: dict[str, Any] = Field(default_factory=dict)
    epochs: PositiveInt = 60
    lr: PositiveFloat = 3e-3
    batch_size: PositiveInt = 32
    warmup_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    seed: int = 0
    device: str = "auto"


class ImportanceParams(_Params):
    batch_size: PositiveInt = 64
    dtype: Literal["float32", "float16"] = "float32"
    seed: int = 0
    device: str = "auto"


class MaskSearchParams(_Params):
    sparsity: float = 0.9
    objective: str = "forget_retain"
    lam: float = Field(1.0, ge=0.0)
    max_sweeps: int = Field(10, ge=0)

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, value: float) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"sparsity={value!r} is not allowed: expected 0 <= sparsity < 1")
        return value

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: str) -> str:
        if value not in OBJECTIVES:
            raise ValueError(f"objective={value!r} is not allowed: expected one of {OBJECTIVES}")
        return value


class UnlearnParams(_Params):
    rule: str = "gd"
    lr: PositiveFloat = 1e-3
    max_steps: PositiveInt = 100
    alpha: float = Field(1.0, ge=0.0)
    batch_size: PositiveInt = 32
    eval_every: PositiveInt = 5
    stop_at_retrain_level: bool = True
    seed: int = 0
    device: str = "auto"

    @field_validator("rule")
    @classmethod
    def _rule(cls, value: str) -> str:
        if value not in RULES:
            raise ValueError(f"rule={value!r} is not allowed: expected one of {RULES}")
        return value


class EvaluateParams(_Params):
    batch_size: PositiveInt = 64
    device: str = "auto"
