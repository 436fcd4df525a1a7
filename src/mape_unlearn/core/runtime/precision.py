"""bf16 autocast of the forward pass, where the hardware multiplies bf16 and the model gains.

Under ``torch.autocast`` the matrix products run in bf16 while the weights, their gradients and
the optimizer state stay float32 (bf16 keeps float32's exponent range, so no loss scaling), and
every loss here is taken in float32 (the logits are promoted before the softmax). On a GPU
that means the tensor cores; on a CPU with bf16 matrix units (AVX512-BF16, AMX) a 1024 x 1024
product runs about 4x faster in bf16 than in float32 (benchmarks/bf16.py).

The cast of each weight to bf16 costs a pass over the weights at every forward, so a small
model loses: the embedded default (0.6 M parameters, width 128) trains 1.5x *slower* under
autocast on this CPU, SmolLM2-135M 1.5x faster (its scoring passes 1.8x). ``auto`` therefore
turns bf16 on only where the device has bf16 units and the model has ``AUTO_MIN_PARAMETERS``.

Each stage that runs a model has an ``autocast`` setting: ``auto`` (the above), ``bf16``
(always, e.g. to compare) or ``off`` (float32). A context held over several forward passes
reuses its bf16 weights; one held across an optimizer step would use stale ones, so training
clears the cache after each step.
"""

from __future__ import annotations

import functools
import logging
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import nn

log = logging.getLogger(__name__)

Autocast = Literal["auto", "bf16", "off"]
AUTOCAST_SETTINGS: tuple[str, ...] = get_args(Autocast)

# below this many parameters ``auto`` stays float32: bf16 measured losing at 0.6 M parameters
# (the embedded default: a training step 0.65-0.91x as fast), gaining at 135 M (SmolLM2:
# 1.5-1.6x; benchmarks/bf16.py). Unmeasured between; 50 M keeps the 23 M MiniLM classifier of
# conf/minilm_classification (half of it embeddings, no matrix product) at its float32 figures
AUTO_MIN_PARAMETERS = 50_000_000

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_said: set[tuple[str, bool]] = set()  # (device type, bf16) decisions already logged


@functools.cache
def _cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU's bf16 matrix-unit flags (Linux /proc/cpuinfo; none elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.is_file() else set()
    return tuple(flag for flag in _CPU_BF16_FLAGS if flag in flags)


def has_bf16_units(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices natively (else bf16 is emulated, slowly)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and bool(_cpu_bf16_flags())


def uses_bf16(device: torch.device, setting: str, model: nn.Module) -> bool:
    """Whether ``setting`` (one of ``AUTOCAST_SETTINGS``) runs ``model`` in bf16 on ``device``."""
    if setting not in AUTOCAST_SETTINGS:
        raise ValueError(
            f"autocast={setting!r} is not allowed: expected one of {AUTOCAST_SETTINGS}"
        )
    if setting != "auto":
        return setting == "bf16"
    size = sum(p.numel() for p in model.parameters())
    return has_bf16_units(device) and size >= AUTO_MIN_PARAMETERS


def autocast(
    device: torch.device, setting: str, model: nn.Module
) -> AbstractContextManager[object]:
    """``torch.autocast`` to bf16 when :func:`uses_bf16`, else a no-op; the choice is logged
    once per device type. Hold one context over a whole evaluation: the bf16 copies of the
    weights are cached for as long as it is open (not across optimizer steps, which change them).
    """
    bf16 = uses_bf16(device, setting, model)
    if (device.type, bf16) not in _said:
        _said.add((device.type, bf16))
        log.info(
            "autocast=%s on %s: %s",
            setting,
            device.type,
            "bf16 matrix products, float32 weights and losses" if bf16 else "float32",
        )
    if not bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
