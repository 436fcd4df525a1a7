import pytest
import torch

from mape_unlearn.core.runtime.device import resolve_device


def test_auto_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_unavailable_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match=r"device='cuda' is not available: no CUDA device"):
        resolve_device("cuda")


@pytest.mark.parametrize("name", ["gpu0", "mps"])
def test_unknown_device_names_are_rejected(name):
    with pytest.raises(ValueError, match=rf"device='{name}' is not"):
        resolve_device(name)
