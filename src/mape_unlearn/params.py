"""Typed parameters of every stage, validated by Kedro before any node runs.

Each model mirrors one ``conf/base/parameters_<stage>.yml`` group, which holds the defaults;
a bad or missing value fails the run up front with the parameter's name, the value given and
what is allowed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

from mape_unlearn.core.search import OBJECTIVES
from mape_unlearn.core.unlearning import RULES


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# data_prep: one model per sub-group (generator, holdout, forget), so that each node depends
# only on its own parameters.
class GeneratorParams(_Params):
    n_people: PositiveInt
    seed: int


class HoldoutParams(_Params):
    fraction: float = Field(ge=0.0, lt=1.0)
    seed: int


class ForgetParams(_Params):
    fraction: float = Field(gt=0.0, lt=1.0)
    ids: list[str] | None
    seed: int


class TrainParams(_Params):
    model_type: str
    architecture: dict[str, Any]
    epochs: PositiveInt
    lr: PositiveFloat
    batch_size: PositiveInt
    warmup_fraction: float = Field(ge=0.0, lt=1.0)
    weight_decay: float = Field(ge=0.0)
    seed: int
    device: str


class ImportanceParams(_Params):
    batch_size: PositiveInt
    dtype: Literal["float32", "float16"]
    seed: int
    device: str
    autocast: bool  # bf16 autocast of the forward on CUDA; ignored on CPU


class MaskSearchParams(_Params):
    sparsity: float
    objective: str
    lam: float = Field(ge=0.0)
    max_sweeps: int = Field(ge=0)

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
    rule: str
    lr: PositiveFloat
    max_steps: PositiveInt
    alpha: float = Field(ge=0.0)
    beta: PositiveFloat
    batch_size: PositiveInt
    eval_every: PositiveInt
    stop_at_retrain_level: bool
    seed: int
    device: str

    @field_validator("rule")
    @classmethod
    def _rule(cls, value: str) -> str:
        if value not in RULES:
            raise ValueError(f"rule={value!r} is not allowed: expected one of {RULES}")
        return value


class RelearnParams(_Params):
    """The relearning attack: fine-tune on ``fraction`` of the forget people, probe the rest."""

    fraction: float = Field(gt=0.0, lt=1.0)
    epochs: PositiveInt
    lr: PositiveFloat
    batch_size: PositiveInt
    seed: int


class EvaluateParams(_Params):
    batch_size: PositiveInt
    device: str
    methods: list[str]
    relearn: RelearnParams


class SelectorParams(_Params):
    """How a compared method chooses the weights it updates (METHOD.md §5)."""

    kind: Literal["modules", "random_modules", "full", "salun", "sa"]
    objective: str | None  # modules: the search objective (None: mask_search.objective)
    greedy: bool  # modules: greedy sweeps after the warm start, or the warm start alone
    seed: int
