"""How to unlearn: the rule, its weights, the optimiser, the step budget, the trace and the
stop (parameters_unlearn.yml), validated once when Kedro builds them."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from mape_unlearn.core.data.encoding import TokenView
from mape_unlearn.core.runtime.precision import Autocast
from mape_unlearn.core.runtime.settings import settings

# the forget term of each rule: core/method/rules.py (docs/method.md §4)
Rule = Literal["ga", "gd", "npo", "so", "bounded", "match", "sharp_minmax"]
RULES: tuple[str, ...] = get_args(Rule)
# rules whose forget term aims at the never-seen level of each answer, not at infinity
NEVER_SEEN_RULES = ("bounded", "match")
# what "forget accuracy" means along a run and for the stop: see metrics.teacher_forced_stats;
# never_seen_ks: 1 - the KS p-value of the forget answers' NLLs against the never-seen ones
# (stopping.py), a stop on the distribution rather than on the argmax
StopMetric = Literal[
    "answer_token_accuracy", "exact_match", "fact_accuracy", "fact_exact_match", "never_seen_ks"
]
STOP_METRICS: tuple[str, ...] = get_args(StopMetric)
# adam: Adam on the rule's gradient; sam: Adam on the gradient at the sharpness-aware
# perturbation of the weights (core/method/stepper.py, docs/method.md §4)
Optimizer = Literal["adam", "sam"]


@settings
class UnlearnSettings:
    """How to unlearn (parameters_unlearn.yml): the base rule, its weights, the optimiser, the
    step budget, the trace and where to stop."""

    rule: Rule
    lr: PositiveFloat  # Adam's step size; for `so`, the Newton step size (1 = a full damped step)
    max_steps: PositiveInt
    alpha: NonNegativeFloat  # weight of the retain NLL (gd, npo, bounded, match)
    beta: PositiveFloat  # npo: inverse temperature
    damping: PositiveFloat  # so: added to the diagonal retain Fisher, relative to its mean
    kl_weight: NonNegativeFloat  # weight of KL(original || model) on retain batches; 0 = off
    batch_size: PositiveInt
    eval_every: PositiveInt  # steps between trace checkpoints (forget and retain accuracy)
    probe_retain_samples: PositiveInt  # retain rows whose accuracy the trace records
    stop_metric: StopMetric  # the trace's forget (and but for never_seen_ks, retain) level
    forget_tokens: TokenView  # what the forget term scores (docs/method.md §4)
    seed: int
    stop_at_retrain_level: bool = True  # stop once forget accuracy reaches the target level
    target: Literal["retrain", "holdout"] = "retrain"  # whose level that is
    device: str = "auto"  # core.runtime.device.resolve_device
    # bf16 forward where the device has bf16 units and the model is large enough (auto keeps
    # the embedded default float32), bf16 or off: core.runtime.precision
    autocast: Autocast = "auto"
    optimizer: Optimizer = "adam"
    rho: PositiveFloat = 0.1  # sam and sharp_minmax: the radius of the weight perturbation
    # sharp_minmax: the retain step's weight (the forget step's is 1 - minmax_alpha) and the
    # weight of the sharpness its forget step maximises (core/method/sharp_minmax.py)
    minmax_alpha: float = Field(default=0.99, ge=0.0, le=1.0)
    minmax_lambda: NonNegativeFloat = 1.0

    @model_validator(mode="after")
    def _minmax_has_no_kl(self) -> UnlearnSettings:
        if self.rule == "sharp_minmax" and self.kl_weight > 0:
            raise ValueError(
                f"unlearn.kl_weight={self.kl_weight} is not allowed with "
                "unlearn.rule='sharp_minmax': its retain side is the retain NLL alone; "
                "set kl_weight: 0"
            )
        return self
