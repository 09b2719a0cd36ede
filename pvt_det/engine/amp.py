"""Mixed precision on a machine without CUDA: mmengine's ``AmpOptimWrapper`` needs CUDA, this wrapper runs
the forward pass under bfloat16 autocast on the CPU (``tools/train.py --amp`` picks it there)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed precision on the CPU: the forward pass runs under bfloat16 autocast.

    mmengine's ``AmpOptimWrapper`` refuses to start without CUDA. bfloat16 keeps float32's
    exponent range, so unlike float16 it needs no loss scaling: backward and step are plain.
    Convolutions whose input is smaller than their kernel (RetinaNet's P7 conv on a 1x1 P6 map,
    i.e. images up to 64 px) run in float32: oneDNN's bfloat16 weight gradient for them is often
    NaN (torch 2.13), and they cost nothing.
    """

    def __init__(self, dtype: str | torch.dtype = 'bfloat16', loss_scale: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if self.cast_dtype != torch.bfloat16:
            raise ValueError(f'CPU autocast supports only bfloat16, got dtype={dtype!r}')

    @contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        guard_tiny_convs(model)
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield


def guard_tiny_convs(model: torch.nn.Module) -> None:
    """Run each Conv2d in float32 while its input is smaller than its kernel (see CPUAmpOptimWrapper)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and not hasattr(module, '_pvt_det_autocast_paused'):
            module._pvt_det_autocast_paused = False
            module.register_forward_pre_hook(_pause_autocast_if_tiny)
            module.register_forward_hook(_resume_autocast)


def _pause_autocast_if_tiny(module: torch.nn.Conv2d, args: tuple) -> tuple | None:
    x = args[0]
    tiny = x.dim() == 4 and (x.shape[-2] < module.kernel_size[0] or x.shape[-1] < module.kernel_size[1])
    if tiny and torch.is_autocast_enabled('cpu'):
        torch.set_autocast_enabled('cpu', False)
        module._pvt_det_autocast_paused = True
        return (x.float(), *args[1:])
    return None


def _resume_autocast(module: torch.nn.Conv2d, args: tuple, output: torch.Tensor) -> None:
    if module._pvt_det_autocast_paused:
        module._pvt_det_autocast_paused = False
        torch.set_autocast_enabled('cpu', True)
