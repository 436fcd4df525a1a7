"""Fine-tuning on answer tokens: the original model and the retrain-on-retain reference.

Warmup then cosine decay: on the embedded default a constant learning rate needed ~5x more
epochs to memorise the answers (docs/method.md §6.3).
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from mape_unlearn.core.data.encoding import TokenBatch
from mape_unlearn.core.method.losses import mean_answer_nll
from mape_unlearn.core.runtime import precision
from mape_unlearn.core.runtime.precision import Autocast

log = logging.getLogger(__name__)


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} is not allowed: expected a positive number")


def train_on_answers(
    model: nn.Module,
    data: TokenBatch,
    epochs: int,
    lr: float,
    batch_size: int,
    warmup_fraction: float,
    weight_decay: float,
    seed: int,
    device: torch.device,
    description: str = "train",
    autocast: Autocast = "off",
) -> tuple[nn.Module, list[float]]:
    """Train every weight on the answer-token NLL; returns the model and the loss per epoch.

    ``autocast`` (``core.runtime.precision``) runs the forward in bf16 where it applies; the
    weights, the optimizer state and the loss stay float32. Dropout (a
    pretrained model's, e.g. BERT's 0.1) draws from the global generator, seeded here with
    ``seed`` inside a forked state: the run is reproducible whatever ran before it, and the
    caller's random state is left as it was.
    """
    for name, value in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size)):
        _positive(name, value)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model.to(device).train()
        generator = torch.Generator().manual_seed(seed)
        steps = epochs * math.ceil(len(data) / batch_size)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        schedule = get_cosine_schedule_with_warmup(optimizer, int(warmup_fraction * steps), steps)
        history = []
        progress = tqdm(total=steps, desc=description, unit="batch", leave=False)
        for _ in range(epochs):
            total, count = 0.0, 0
            for batch in data.batches(batch_size, generator):
                with precision.autocast(device, autocast, model):
                    loss = mean_answer_nll(model, batch.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                torch.clear_autocast_cache()  # an enclosing context's bf16 weights are stale now
                schedule.step()
                total, count = total + loss.item() * len(batch), count + len(batch)
                progress.update()
            history.append(total / count)
            progress.set_postfix(epoch=len(history), nll=f"{history[-1]:.3f}")
        progress.close()
        log.info("%s: %d epochs, final answer NLL %.4f", description, epochs, history[-1])
        return model.eval(), history
