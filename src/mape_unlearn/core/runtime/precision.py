"""bf16 autocast for the forward pass on CUDA, and only there.

On a GPU, bf16 autocast roughly halves activation memory and uses the tensor cores; the mask
gradients and the loss stay float32 (the masks are float32 leaves, cross-entropy autocasts to
float32). On the CPU it is ignored, so CPU runs stay float32, deterministic and comparable
with every earlier result.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

import torch

log = logging.getLogger(__name__)

_said_ignored: set[str] = set()  # device types already told that autocast is ignored there


def bf16_autocast(device: torch.device, enabled: bool) -> AbstractContextManager[object]:
    """``torch.autocast`` to bf16 when ``enabled`` on CUDA; a no-op elsewhere (logged once)."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    if enabled and device.type not in _said_ignored:
        _said_ignored.add(device.type)
        log.info(
            "autocast=true ignored on %s: bf16 autocast applies on CUDA only, "
            "so %s results stay float32 and deterministic",
            device.type,
            device.type,
        )
    return nullcontext()
