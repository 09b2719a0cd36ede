"""Parameters and FLOPs of a model via mmengine.analysis, counted as the papers count them.

FLOPs follow the papers and mmengine: one multiply-add counts as one FLOP. Attention matmuls are
included (the PVT/CvT papers' method): ``scaled_dot_product_attention``, which mmengine's tracer does
not know, is counted as its two matmuls, ``q @ k^T`` and ``attn @ v``: B*heads*N*N'*(d_qk + d_v).
"""
from __future__ import annotations

import os.path as osp
from typing import Any

import torch
from torch import nn

from pvt_det.cli import ToolError


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """``scaled_dot_product_attention(q, k, v)``: q @ k^T plus attn @ v, in multiply-adds."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(t) for t in inputs[:3])
    *batch, n_q, d_qk = q
    n_kv, d_v = k[-2], v[-1]
    batch_size = 1
    for dim in batch:
        batch_size *= dim
    return batch_size * n_q * n_kv * (d_qk + d_v)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(FLOPs as multiply-adds, parameters) of ``model`` on one ``input_shape`` (C, H, W) tensor."""
    from mmengine.analysis import FlopAnalyzer, parameter_count
    param = next(model.parameters())
    inputs = (torch.randn(1, *input_shape, device=param.device, dtype=param.dtype),)
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        return analyzer.total(), parameter_count(model)['']


class TensorForward(nn.Module):
    """An mmdet/mmseg model's ``_forward`` (backbone, neck, heads; no pre/post-processing) on a tensor."""

    def __init__(self, model: nn.Module, shape: tuple[int, int]) -> None:
        super().__init__()
        self.model, self.samples = model, data_samples(model, shape)

    def forward(self, x: torch.Tensor) -> Any:
        return self.model._forward(x, self.samples)


def data_samples(model: nn.Module, shape: tuple[int, int]) -> list | None:
    """Metainfo-only samples: two-stage detectors need image shapes for their proposals."""
    meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape,
                scale_factor=(1.0, 1.0))
    module = type(model).__module__
    if module.startswith('mmdet'):
        from mmdet.structures import DetDataSample
        return [DetDataSample(metainfo=meta)]
    if module.startswith('mmseg'):
        from mmseg.structures import SegDataSample
        return [SegDataSample(metainfo=meta)]
    return None


def build_from_config(path: str) -> nn.Module:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(path)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    if scope == 'mmseg':
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    else:
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    model_cfg = cfg.model
    if 'backbone' in model_cfg:
        model_cfg.backbone.pop('init_cfg', None)  # no download: FLOPs need only the structure
    if model_cfg.get('type') == 'EncoderDecoder':
        model_cfg.pop('pretrained', None)
    return MODELS.build(model_cfg)


def build_model(name_or_config: str, shape: tuple[int, int], backbone_only: bool) -> tuple[nn.Module, str]:
    """The module to analyze and a description of it."""
    from pvt_det.models import build_classifier
    from pvt_det.models.classifiers import classifier_names
    if name_or_config in classifier_names():
        model = build_classifier(name_or_config)
        if backbone_only:
            return model.backbone.eval(), f'{name_or_config} backbone'
        return model.eval(), f'{name_or_config} classifier'
    if not osp.isfile(name_or_config):
        raise ToolError(f'{name_or_config!r} is neither a config file nor a model name; names: '
                        f'{", ".join(classifier_names())}')
    model = build_from_config(name_or_config).eval()
    if backbone_only:
        return model.backbone, f'backbone of {name_or_config}'
    return TensorForward(model, shape), name_or_config

