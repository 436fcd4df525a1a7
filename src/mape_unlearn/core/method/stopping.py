"""Where unlearning stops (docs/method.md §4, §6): the forget level to reach, the trace's
checkpoints on the way, when to check, and where a trace first met its target.

The level is the ``stop_metric`` (metrics.teacher_forced_stats) of a model that never saw the
forget people: the retrain model on them (``unlearn.target: retrain``) or the original on the
holdout people (``holdout``). The never-seen rules also need that model's NLL of each answer
(:func:`never_seen_nll`), the distribution they steer the forget answers toward.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import torch
from scipy.stats import ks_2samp
from torch import nn

from mape_unlearn.core.data.encoding import TokenBatch, scored_on
from mape_unlearn.core.evaluation.metrics import teacher_forced_stats
from mape_unlearn.core.method.losses import answer_nll
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.runtime import precision
from mape_unlearn.core.runtime.device import resolve_device

log = logging.getLogger(__name__)

DISTRIBUTION_METRICS = ("never_seen_ks",)  # stop metrics that compare with never-seen NLLs
TYPICAL_P_VALUE = 0.5  # the median p-value of two samples of one distribution


class Levels:
    """The trace's checkpoint: forget accuracy and the accuracy of a fixed retain subsample,
    both by the settings' ``stop_metric`` (the forget/utility trajectory; the retain probe's
    ``fact_exact_match`` under ``never_seen_ks``). The stop needs only the forget level, so the
    per-step checks near the target skip the retain probe, which is measured every
    ``eval_every`` steps and where the run stops."""

    def __init__(
        self,
        forget: TokenBatch,
        probe: TokenBatch,
        s: UnlearnSettings,
        device: torch.device,
        never_seen: torch.Tensor | None = None,
    ) -> None:
        self.data, self.settings, self.device = {"forget": forget, "retain": probe}, s, device
        self.never_seen = never_seen

    def forget(self, model: nn.Module) -> dict[str, float]:
        return self._measure(model, "forget")

    def retain(self, model: nn.Module) -> dict[str, float]:
        return self._measure(model, "retain")

    def _measure(self, model: nn.Module, split: str) -> dict[str, float]:
        s = self.settings
        if split == "retain" and s.stop_metric in DISTRIBUTION_METRICS:
            s = replace(s, stop_metric="fact_exact_match")
        level = _level(model, self.data[split], s, self.device, self.never_seen)
        return {f"{split}_accuracy": level}


def reached(entry: dict[str, float], target: float | None) -> bool:
    return target is not None and "forget_accuracy" in entry and entry["forget_accuracy"] <= target


def steps_to_next_check(
    trace: list[dict[str, float]], entry: dict[str, float], target: float | None, s: UnlearnSettings
) -> int:
    """1 once the target is near, else ``eval_every``: matched forgetting must not pass far
    below the target between two checkpoints. Near means the drop of the last interval, twice
    over, would reach the target; once near, every step is checked to the end."""
    checks = [e for e in trace if "forget_accuracy" in e]
    if target is None or not checks:
        return s.eval_every
    last = checks[-1]
    if entry["step"] - last["step"] == 1 and len(checks) > 1:
        return 1  # already checking every step
    drop = last["forget_accuracy"] - entry["forget_accuracy"]
    return 1 if entry["forget_accuracy"] - 2 * max(drop, 0.0) <= target else s.eval_every


def nothing_to_unlearn(start: dict[str, float], metric: str, target: float | None) -> None:
    log.warning(
        "nothing to unlearn: the model's forget %s is %.3f, already at or below the "
        "target %.3f (the forget set follows from the rest of the data, or was never "
        "learnt); the model is returned unchanged",
        metric,
        start["forget_accuracy"],
        target,
    )


def stop_level(model: nn.Module, data: TokenBatch, settings: UnlearnSettings) -> float:
    """The forget level a run stops at (``unlearn.target``): ``model``'s ``stop_metric`` on
    ``data``, the retrain model's on the forget people or the original's on the holdout people.

    ``never_seen_ks`` stops where the forget answers' NLLs are as alike the never-seen ones as
    two samples of one distribution typically are: a KS p-value of at least 0.5, its median.
    """
    if settings.stop_metric in DISTRIBUTION_METRICS:
        return 1.0 - TYPICAL_P_VALUE
    return _level(model, data, settings, resolve_device(settings.device))


def _level(
    model: nn.Module,
    data: TokenBatch,
    settings: UnlearnSettings,
    device: torch.device,
    never_seen: torch.Tensor | None = None,
) -> float:
    """``model``'s ``stop_metric`` on ``data``: the stop level and every trace checkpoint."""
    if settings.stop_metric in DISTRIBUTION_METRICS:
        assert never_seen is not None, "never_seen_ks needs the never-seen NLLs"
        forget = never_seen_nll(model, data, replace(settings, device=str(device)))
        return 1.0 - float(ks_2samp(forget.numpy(), never_seen.cpu().numpy()).pvalue)
    with precision.autocast(device, settings.autocast, model):
        stats = teacher_forced_stats(model, data, settings.batch_size, device)
    return stats[settings.stop_metric]


def matched_forgetting(
    trace: list[dict[str, float]], target_forget_accuracy: float | None
) -> dict[str, float]:
    """Where the trajectory first reaches the target: step, and forget and retain accuracy
    there (docs/method.md §6), and the forget accuracy at the last checkpoint (where the run
    stopped).

    NaN when the target is unknown or never reached.
    """
    checks = [entry for entry in trace if "forget_accuracy" in entry]
    stop = checks[-1]["forget_accuracy"] if checks else math.nan
    for entry in checks:
        if reached(entry, target_forget_accuracy):
            return {
                "step": entry["step"],
                "forget_accuracy": entry["forget_accuracy"],
                "retain_accuracy": entry["retain_accuracy"],
                "forget_accuracy_at_stop": stop,
            }
    nan = math.nan
    return {
        "step": nan,
        "forget_accuracy": nan,
        "retain_accuracy": nan,
        "forget_accuracy_at_stop": stop,
    }


@torch.no_grad()
def never_seen_nll(model: nn.Module, data: TokenBatch, settings: UnlearnSettings) -> torch.Tensor:
    """Each answer's NLL per scored token (``forget_tokens``: the fact's or the whole answer's)
    under ``model``, ``[n]``: what a model that never saw ``data``'s people gives them, the
    distribution ``bounded`` and ``match`` aim the forget answers at (rules.never_seen_term)."""
    device = resolve_device(settings.device)
    model.to(device).eval()
    levels = []
    for batch in scored_on(data, settings.forget_tokens).batches(settings.batch_size):
        nll, counts = answer_nll(model, batch.to(device))
        levels.append((nll / counts.clamp(min=1)).float().cpu())
    return torch.cat(levels) if levels else torch.zeros(0)
