"""Device and precision choices, CUDA paths included, checked on a CPU with stand-ins."""

import pytest
import torch

from simclr_lib import device as device_module
from simclr_lib.device import autocast_dtype, module_device, native_bf16, resolve_device

CUDA = torch.device("cuda", 0)


@pytest.mark.parametrize(("capability", "expected"), [
    ((7, 5), torch.float16),   # T4 (Colab's free GPU): bf16 only emulated -> fp16
    ((7, 0), torch.float16),   # V100
    ((8, 0), torch.bfloat16),  # A100
    ((8, 9), torch.bfloat16),  # L4
    ((9, 0), torch.bfloat16),  # H100
])
def test_auto_precision_uses_bf16_only_where_it_is_native(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    # is_bf16_supported() also counts emulation: it must not decide.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("auto", CUDA) is expected
    assert native_bf16(CUDA) is (expected is torch.bfloat16)


def test_precision_on_cpu_and_explicit_choices():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None
    assert autocast_dtype("fp32", CUDA) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("fp16", CUDA) is torch.float16
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        autocast_dtype("fp16", cpu)
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        autocast_dtype("fp8", cpu)


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_module_device():
    assert module_device(torch.nn.Linear(2, 2, device="meta")).type == "meta"
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")


def test_training_and_evaluation_share_the_precision_rule():
    # evaluate.py and baselines.py once hard-coded bf16: they must ask device.py.
    import inspect

    from simclr_lib import baselines, evaluate

    for module in (evaluate, baselines):
        text = inspect.getsource(module)
        assert "bfloat16" not in text and "autocast_dtype(" in text, module.__name__
    assert device_module.autocast_dtype is autocast_dtype
