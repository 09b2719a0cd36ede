"""SegFormer's all-MLP decode head as NVlabs/SegFormer and Hugging Face ship it, as an mmseg decode head.

mmseg's own ``SegformerHead`` puts a 1x1 ConvModule (conv, BatchNorm, ReLU) on every level; the NVlabs code
(``SegFormerHead``: ``linear_c1..4``, ``linear_fuse``, ``linear_pred``) and transformers'
``SegformerForSemanticSegmentation`` (``linear_c.{i}``, ``linear_fuse``, ``batch_norm``, ``classifier``) project
each level with a plain linear layer, and concatenate the levels coarsest first. :class:`SegformerMLPHead`
computes what they compute, so their trained segmentors evaluate exactly in mmseg:

    linear_c[i] per level -> bilinear resize to stride 4 -> concat (level 4, 3, 2, 1)
    -> linear_fuse (1x1 conv, BatchNorm, ReLU) -> dropout -> conv_seg

Files: its ``_load_from_state_dict`` converts the NVlabs and Hugging Face key names (``linear_pred`` and
``classifier`` become ``conv_seg``; the NVlabs files' own ``conv_seg``, which their forward never uses, is
dropped), and :meth:`SegformerMLPHead.adopt_model_keys` moves a Hugging Face file's ``segformer.*`` encoder under
the segmentor's ``backbone.`` for pvt_det's whole-model loading. A file with mmseg's ``SegformerHead`` keys is
refused with the config change to make, and the other way round (see ``pvt_det.models.model_checkpoint``).
"""
from __future__ import annotations

import re
from collections.abc import MutableMapping

import torch
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..checkpoint import CheckpointError

__all__ = ['SegformerMLPHead', 'convert_segformer_head_keys', 'is_all_mlp_head_key']

# Head keys of the NVlabs / Hugging Face all-MLP head (relative to the head), which mmseg's SegformerHead lacks.
_ALL_MLP_KEY = re.compile(r'(linear_c\d*|linear_projections)\.|linear_pred\.|linear_fuse\.weight$|batch_norm\.|'
                          r'classifier\.')
_MMSEG_HEAD_KEY = re.compile(r'(convs\.\d+|fusion_conv)\.')


def is_all_mlp_head_key(key: str) -> bool:
    """Whether ``key`` (relative to the decode head) names a parameter of the NVlabs/Hugging Face all-MLP head."""
    return _ALL_MLP_KEY.match(key) is not None


@MODELS.register_module()
class SegformerMLPHead(BaseDecodeHead):
    """The all-MLP head of NVlabs/SegFormer and transformers' ``SegformerForSemanticSegmentation``.

    Takes mmseg ``SegformerHead``'s arguments (``in_channels``, ``in_index``, ``channels``, ``num_classes``,
    ``norm_cfg``, ``dropout_ratio``, ``align_corners``, ...), so a config switches between the two with
    ``model.decode_head.type`` alone.
    """

    def __init__(self, interpolate_mode: str = 'bilinear', **kwargs) -> None:
        super().__init__(input_transform='multiple_select', **kwargs)
        self.interpolate_mode = interpolate_mode
        self.linear_c = nn.ModuleList(nn.Linear(width, self.channels) for width in self.in_channels)
        self.linear_fuse = ConvModule(self.channels * len(self.in_channels), self.channels, 1,
                                      norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        inputs = self._transform_inputs(inputs)
        size = inputs[0].shape[2:]
        levels = []
        for x, linear in zip(inputs, self.linear_c):
            batch, _, height, width = x.shape
            x = linear(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(batch, -1, height, width)
            levels.append(resize(x, size=size, mode=self.interpolate_mode, align_corners=self.align_corners))
        # Coarsest level first, as both originals concatenate (the fuse conv's input channels follow that order)
        return self.cls_seg(self.linear_fuse(torch.cat(levels[::-1], dim=1)))

    # ------------------------------------------------------------------------------------------------ weights
    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        convert_segformer_head_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def adopt_model_keys(self, state_dict: MutableMapping[str, Tensor], prefix: str) -> None:
        """Whole-model loading (``fit_state_dict``): a Hugging Face ``SegformerForSemanticSegmentation`` file keeps
        its encoder under ``segformer.``; move it under the segmentor's ``backbone.`` (whose Segformer layout the
        backbone converts), and convert this head's keys."""
        parent = prefix[:-1].rpartition('.')[0]
        model_prefix = f'{parent}.' if parent else ''
        hub, backbone = model_prefix + 'segformer.', model_prefix + 'backbone.'
        if any(key.startswith(hub) for key in state_dict) and not any(key.startswith(backbone) for key in state_dict):
            for key in [key for key in state_dict if key.startswith(hub)]:
                state_dict[backbone + key[len(model_prefix):]] = state_dict.pop(key)
        convert_segformer_head_keys(state_dict, prefix)


def convert_segformer_head_keys(state_dict: MutableMapping[str, Tensor], prefix: str) -> None:
    """Rename, in place, the NVlabs (mmseg 0.x ``SegFormerHead``) or Hugging Face decode-head keys under ``prefix``
    to :class:`SegformerMLPHead`'s; its own keys pass untouched. mmseg's ``SegformerHead`` keys are refused: that
    file needs that head."""
    keys = [key for key in state_dict if key.startswith(prefix)]
    relative = [key[len(prefix):] for key in keys]
    if any(_MMSEG_HEAD_KEY.match(key) for key in relative):
        raise CheckpointError(
            f'the checkpoint\'s {prefix}* is mmseg\'s SegformerHead (convs.*, fusion_conv.*), not the NVlabs/Hugging '
            f'Face all-MLP head: set model.decode_head.type=\'SegformerHead\' (e.g. --cfg-options '
            f'model.decode_head.type=SegformerHead)')
    if any(key.startswith('linear_pred.') for key in relative):
        for key, rest in zip(keys, relative):  # NVlabs' conv_seg: built by mmseg 0.x's BaseDecodeHead, never
            if rest.startswith('conv_seg.'):  # used by its forward; linear_pred takes its place
                del state_dict[key]
    for key, rest in zip(keys, relative):
        new = _renamed(rest)
        if key in state_dict and new != rest:
            state_dict[prefix + new] = state_dict.pop(key)


def _renamed(key: str) -> str:
    if match := re.fullmatch(r'linear_c(\d)\.proj\.(.+)', key):  # NVlabs: linear_c1..4, one-based
        return f'linear_c.{int(match[1]) - 1}.{match[2]}'
    if match := re.fullmatch(r'(?:linear_c|linear_projections)\.(\d+)\.proj\.(.+)', key):  # HF (<= 4 / 5 names)
        return f'linear_c.{match[1]}.{match[2]}'
    for old, new in (('linear_pred.', 'conv_seg.'), ('classifier.', 'conv_seg.'), ('batch_norm.', 'linear_fuse.bn.'),
                     ('linear_fuse.weight', 'linear_fuse.conv.weight')):
        if key.startswith(old):
            return new + key[len(old):]
    return key
