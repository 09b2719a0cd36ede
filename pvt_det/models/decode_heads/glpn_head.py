"""GLPN's decoder and depth head (Kim et al., "Global-Local Path Networks for Monocular Depth Estimation with
Vertical CutDepth", 2022) as an mmseg decode head for ``DepthEstimator``.

It computes what transformers' ``GLPNForDepthEstimation`` computes after its encoder: from the coarsest map to the
finest, a 1x1 convolution to ``channels`` (skipped where the map already has that width), a selective feature
fusion with the coarser stage's upsampled result, and a 2x bilinear upsampling; a last 2x upsampling brings the
stride-4 result to the input size, where conv3x3-ReLU-conv3x3 and ``sigmoid * max_depth`` give metres.

Weights: a Hugging Face GLPN file (``glpn.encoder.*``, ``decoder.*``, ``head.*``) loads into a ``DepthEstimator``
with this head: :func:`adopt_glpn_hub_keys` moves the file's keys under the model's ``backbone.`` /
``decode_head.`` (called by pvt_det's whole-model loading, :func:`pvt_det.models.model_checkpoint.fit_state_dict`),
the backbone converts its Segformer-layout encoder keys itself, and :meth:`GLPNHead._load_from_state_dict`
renames the decoder and head keys to this module's.
"""
from __future__ import annotations

import re
from collections.abc import MutableMapping, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor, nn

from pvt_det.registry import register_model

__all__ = ['GLPNHead', 'SelectiveFeatureFusion', 'adopt_glpn_hub_keys', 'is_glpn_hub_state_dict']

# The three parts of a transformers GLPNForDepthEstimation state dict.
HUB_ENCODER, HUB_DECODER, HUB_HEAD = 'glpn.encoder.', 'decoder.', 'head.'


class SelectiveFeatureFusion(BaseModule):
    """GLPN's selective feature fusion (paper section 3.4): two sigmoid attention maps, computed from the
    concatenated local (this stage) and global (coarser stage) features, weight their sum."""

    def __init__(self, channels: int, norm_cfg: dict, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        # bias=True with BN, as GLPN has it (so its weights load exactly)
        self.conv1 = ConvModule(2 * channels, channels, 3, padding=1, bias=True, norm_cfg=norm_cfg)
        self.conv2 = ConvModule(channels, channels // 2, 3, padding=1, bias=True, norm_cfg=norm_cfg)
        self.attention = nn.Conv2d(channels // 2, 2, 3, padding=1)

    def forward(self, local_features: Tensor, global_features: Tensor) -> Tensor:
        attn = self.attention(self.conv2(self.conv1(torch.cat([local_features, global_features], 1))))
        attn = attn.sigmoid()
        return local_features * attn[:, :1] + global_features * attn[:, 1:]


@register_model
class GLPNHead(BaseDecodeHead):
    """GLPN's decoder and depth head; predicts ``(N, 1, H, W)`` depth in ``(0, max_depth)`` metres.

    Args:
        in_channels: widths of the backbone maps, finest first (strides 4, 8, 16, 32).
        in_index: which of the backbone's maps they are (default: the first ``len(in_channels)``).
        channels: the decoder width (GLPN: 64).
        max_depth: the largest depth the head can predict (NYU: 10 m, KITTI: 80 m).
        norm_cfg: the fusion blocks' norm (GLPN: BatchNorm).
        align_corners: for the resize of predictions to the label / image size.
        loss_decode: GLPN trains with the scale-invariant log loss, mmseg's ``SiLogLoss``.
    """

    num_classes = 1
    out_channels = 1
    input_transform = None

    def __init__(self,
                 in_channels: Sequence[int] = (64, 128, 320, 512),
                 in_index: Sequence[int] | None = None,
                 channels: int = 64,
                 max_depth: float = 10.0,
                 norm_cfg: dict | None = None,
                 align_corners: bool = False,
                 loss_decode: dict | Sequence[dict] = dict(type='SiLogLoss'),
                 init_cfg: dict | list | None = None) -> None:
        # BaseDecodeHead.__init__ builds a classifier (conv_seg) and checks num_classes: a depth head has neither,
        # so initialise BaseModule directly, as mmseg's VPDDepthHead does.
        super(BaseDecodeHead, self).__init__(init_cfg=init_cfg)
        if isinstance(in_channels, int) or not in_channels:
            raise ValueError(f'GLPNHead in_channels={in_channels!r}: give the width of every backbone map, '
                             'finest first, e.g. [64, 128, 320, 512]')
        if not max_depth > 0:
            raise ValueError(f'GLPNHead max_depth={max_depth!r} must be positive (metres)')
        self.in_channels = list(in_channels)
        self.channels = channels
        self.max_depth = float(max_depth)
        self.align_corners = align_corners
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)
        self.norm_cfg = norm_cfg
        self.in_index = list(range(len(self.in_channels)) if in_index is None else in_index)
        if len(self.in_index) != len(self.in_channels):
            raise ValueError(f'GLPNHead in_index={self.in_index} must name one backbone map per in_channels entry '
                             f'({self.in_channels})')
        # GLPN skips the 1x1 convolution where a map already has the decoder's width (MiT's stride-4 map: 64)
        self.lateral_convs = nn.ModuleList(
            nn.Identity() if width == channels else nn.Conv2d(width, channels, 1) for width in self.in_channels)
        # no fusion for the coarsest map: nothing coarser to fuse with
        self.fusions = nn.ModuleList(
            SelectiveFeatureFusion(channels, norm_cfg) for _ in self.in_channels[:-1])
        self.depth_pred = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 1, 3, padding=1))
        losses = [loss_decode] if isinstance(loss_decode, dict) else list(loss_decode)
        built = [MODELS.build(loss) for loss in losses]
        self.loss_decode = built[0] if len(built) == 1 else nn.ModuleList(built)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        if max(self.in_index) >= len(inputs):
            raise ValueError(f'GLPNHead in_index={self.in_index} but the backbone gives {len(inputs)} maps: set the '
                             "backbone's out_indices to all of its stages")
        inputs = [inputs[i] for i in self.in_index]
        x = None
        for index in reversed(range(len(inputs))):
            features = self.lateral_convs[index](inputs[index])
            if x is not None:
                features = self.fusions[index](features, x)
            # GLPN doubles the size; to the finer map's size is the same for inputs divisible by 32, and also
            # works for other sizes (whose maps are not exact halves)
            size = inputs[index - 1].shape[-2:] if index else [2 * side for side in features.shape[-2:]]
            x = F.interpolate(features, size=size, mode='bilinear', align_corners=False)
        x = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)
        return self.depth_pred(x).sigmoid() * self.max_depth

    def loss_by_feat(self, pred_depth_map: Tensor, batch_data_samples: Sequence) -> dict[str, Tensor]:
        gt_depth = torch.stack([sample.gt_depth_map.data for sample in batch_data_samples])
        pred_depth_map = resize(pred_depth_map, size=gt_depth.shape[2:], mode='bilinear',
                                align_corners=self.align_corners)
        losses: dict[str, Tensor] = {}
        for loss in (self.loss_decode if isinstance(self.loss_decode, nn.ModuleList) else [self.loss_decode]):
            value = loss(pred_depth_map, gt_depth)
            losses[loss.loss_name] = losses[loss.loss_name] + value if loss.loss_name in losses else value
        return losses

    # ------------------------------------------------------------------------------------------ weights
    def adopt_model_keys(self, state_dict: MutableMapping[str, Tensor], prefix: str) -> None:
        """Whole-model loading hook (``fit_state_dict`` calls it before comparing keys): a Hugging Face GLPN file's
        keys move under this model's ``backbone.`` and this head's ``prefix``, and the head's are renamed."""
        parent, _, name = prefix[:-1].rpartition('.')
        if adopt_glpn_hub_keys(state_dict, f'{parent}.' if parent else '', head=name):
            convert_glpn_head_keys(state_dict, prefix, len(self.in_channels))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """Rename, in place, Hugging Face GLPN decoder / head keys under ``prefix`` (``decoder.*``, ``head.*``,
        put there by :func:`adopt_glpn_hub_keys`) to this module's; other keys pass untouched."""
        convert_glpn_head_keys(state_dict, prefix, len(self.in_channels))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


_HF_FUSION = {'convolutional_layer1.0.': 'conv1.conv.', 'convolutional_layer1.1.': 'conv1.bn.',
              'convolutional_layer2.0.': 'conv2.conv.', 'convolutional_layer2.1.': 'conv2.bn.',
              'convolutional_layer3.': 'attention.'}
_HF_HEAD = {'head.head.0.': 'depth_pred.0.', 'head.head.2.': 'depth_pred.2.'}


def _hf_head_key(rest: str, num_maps: int) -> str | None:
    """Our name for a Hugging Face GLPN key (without the model prefix), or None if it is not a GLPN head key.
    Decoder stage ``j`` works on the backbone's map ``num_maps - 1 - j`` (GLPN walks coarsest first)."""
    for theirs, ours in _HF_HEAD.items():
        if rest.startswith(theirs):
            return ours + rest[len(theirs):]
    match = re.fullmatch(r'decoder\.stages\.(\d+)\.(convolution|fusion)\.(.+)', rest)
    if match is None or int(match[1]) >= num_maps:
        return None
    index = num_maps - 1 - int(match[1])
    if match[2] == 'convolution':
        return f'lateral_convs.{index}.{match[3]}'
    for theirs, ours in _HF_FUSION.items():
        if match[3].startswith(theirs):
            return f'fusions.{index}.{ours}{match[3][len(theirs):]}'
    return None


def convert_glpn_head_keys(state_dict: MutableMapping[str, Tensor], prefix: str, num_maps: int) -> int:
    """Rename the Hugging Face GLPN decoder / head keys under ``prefix`` to :class:`GLPNHead`'s, in place.
    Returns how many were renamed; keys that are not GLPN's stay for the loader to report."""
    renamed = 0
    for key in [key for key in state_dict if key.startswith(prefix + HUB_DECODER) or
                key.startswith(prefix + HUB_HEAD)]:
        ours = _hf_head_key(key[len(prefix):], num_maps)
        if ours is not None:
            state_dict[prefix + ours] = state_dict.pop(key)
            renamed += 1
    return renamed


def is_glpn_hub_state_dict(state_dict: MutableMapping[str, Tensor]) -> bool:
    """Whether ``state_dict`` is a transformers ``GLPNForDepthEstimation`` file (its three root prefixes)."""
    return any(key.startswith(HUB_ENCODER) for key in state_dict) and \
        any(key.startswith(HUB_DECODER + 'stages.') for key in state_dict) and \
        any(key.startswith(HUB_HEAD + 'head.') for key in state_dict)


def adopt_glpn_hub_keys(state_dict: MutableMapping[str, Tensor], model_prefix: str = '',
                        backbone: str = 'backbone', head: str = 'decode_head') -> bool:
    """Move, in place, a Hugging Face GLPN file's keys under a ``DepthEstimator``'s module names:
    ``glpn.encoder.*`` -> ``backbone.encoder.*`` (a Segformer-encoder layout, which the backbone converts) and
    ``decoder.*`` / ``head.*`` -> ``decode_head.decoder.*`` / ``decode_head.head.*`` (which :class:`GLPNHead`
    converts). Returns False (and changes nothing) for any other state dict."""
    if not is_glpn_hub_state_dict(state_dict):
        return False
    for key in list(state_dict):
        if key.startswith(HUB_ENCODER):
            state_dict[f'{model_prefix}{backbone}.encoder.{key[len(HUB_ENCODER):]}'] = state_dict.pop(key)
        elif key.startswith((HUB_DECODER, HUB_HEAD)):
            state_dict[f'{model_prefix}{head}.{key}'] = state_dict.pop(key)
    return True
