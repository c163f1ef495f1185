"""Training precision per device: bf16 autocast on CPUs that have it, fp16 + loss scaling on CUDA, fp32 on demand."""
from __future__ import annotations

import pytest
import torch

from training.config import TrainConfig
from training.precision import cpu_has_native_bf16, precision_for

CPU = torch.device("cpu")


def test_fp32_never_autocasts_and_auto_follows_the_cpu():
    plain = precision_for(CPU, "fp32")
    assert plain.autocast_dtype is None and not plain.channels_last and not plain.grad_scaler
    auto = precision_for(CPU, "auto")
    assert auto.autocast_dtype == (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert not auto.grad_scaler  # bf16 has float32's exponent range: no loss scaling


def test_cuda_gets_float16_with_loss_scaling_without_needing_a_gpu_to_decide():
    p = precision_for(torch.device("cuda"), "auto")
    assert p.autocast_dtype == torch.float16 and p.grad_scaler and p.channels_last
    assert precision_for(torch.device("cuda"), "fp32").autocast_dtype is None


def test_a_misspelt_precision_is_refused_before_any_training():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="bf16")
    with pytest.raises(ValueError, match="precision"):
        precision_for(CPU, "half")


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_a_bf16_step_runs_the_network_in_bf16_and_keeps_float32_weights():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 7))
    p = precision_for(CPU, "auto")
    net = net.to(memory_format=torch.channels_last)
    before = net[0].weight.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(4, 3, 16, 16).to(memory_format=torch.channels_last)
    with p.autocast(CPU):
        out = net(x)
    assert out.dtype == torch.bfloat16
    loss = torch.nn.functional.cross_entropy(out.float(), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and net[0].weight.dtype == torch.float32
    assert not torch.equal(before, net[0].weight)
