"""CvT: Convolutional vision Transformer (Wu et al., ICCV 2021) as a dense-prediction backbone.

The official architecture (microsoft/CvT ``cls_cvt.py``): three stages, each a convolutional
token embedding (k7 s4 p2, then k3 s2 p1 twice) + LayerNorm and a stack of pre-norm blocks whose
attention projects q/k/v through a depthwise 3x3 conv + BatchNorm (k/v at stride 2). No position
embedding; a cls token joins the last stage only. ``forward`` returns the spatial tokens of each
stage as NCHW maps at strides 4/8/16 (the cls token is kept out of them).

Checkpoints of the official release and of Hugging Face ``CvtModel`` /
``CvtForImageClassification`` load through ``init_cfg`` (layouts registered at the end).
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer
from torch.nn.modules.batchnorm import _BatchNorm

from pvt_det.registry import register_model
from ..checkpoint import CheckpointError, StateDict, register_layout
from ..layers import DropPath, Mlp, PatchEmbed, map_to_tokens, tokens_to_map
from .base import PyramidBackbone


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``: the activation the official CvT checkpoints were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def build_activation(act_cfg: dict | None) -> nn.Module:
    """``None`` or ``dict(type='QuickGELU')``: ours (built directly: mmseg registers another class
    of that name, which a registry lookup would pick under mmseg's scope); else mmcv's builder."""
    if act_cfg is None or act_cfg.get('type') in ('QuickGELU', QuickGELU):
        return QuickGELU()
    return build_activation_layer(act_cfg)


class ConvProjection(nn.Sequential):
    """Depthwise conv + BatchNorm applied to the token map before the q/k/v linears."""

    def __init__(self, dim: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size, stride, kernel_size // 2, groups=dim,
                              bias=False)
        self.bn = nn.BatchNorm2d(dim)


class ConvAttention(nn.Module):
    """Multi-head attention over conv-projected tokens; the cls token (if any) skips the convs."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, kernel_size: int = 3,
                 stride_q: int = 1, stride_kv: int = 2, attn_drop: float = 0.,
                 proj_drop: float = 0., with_cls_token: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        # The official code scales by the full width, not the head width; checkpoints rely on it.
        self.scale = dim ** -0.5
        self.with_cls_token = with_cls_token
        self.attn_drop = attn_drop
        self.conv_proj_q = ConvProjection(dim, kernel_size, stride_q)
        self.conv_proj_k = ConvProjection(dim, kernel_size, stride_kv)
        self.conv_proj_v = ConvProjection(dim, kernel_size, stride_kv)
        self.proj_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def project(self, x: torch.Tensor, hw: tuple[int, int]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Per-head q, k, v ``(B, heads, tokens, head_dim)`` (the cls token first, if any) and the grid of
        the strided keys."""
        B = x.shape[0]
        if self.with_cls_token:
            cls_token, x = x[:, :1], x[:, 1:]
        x = tokens_to_map(x, *hw)
        maps = [proj(x) for proj in (self.conv_proj_q, self.conv_proj_k, self.conv_proj_v)]
        q, k, v = (map_to_tokens(m) for m in maps)
        if self.with_cls_token:
            q, k, v = (torch.cat((cls_token, t), dim=1) for t in (q, k, v))
        q, k, v = (linear(t).reshape(B, t.shape[1], self.num_heads, -1).transpose(1, 2)
                   for linear, t in ((self.proj_q, q), (self.proj_k, k), (self.proj_v, v)))
        return q, k, v, (maps[1].shape[-2], maps[1].shape[-1])

    def attention_weights(self, x: torch.Tensor, hw: tuple[int, int],
                          queries: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """``softmax(q k^T * scale)`` of the spatial tokens ``queries`` (indices into the ``hw`` grid, the cls
        token not counted) over all keys (the cls token's first, then the strided grid),
        ``(B, heads, len(queries), keys)``, and the keys' grid. :meth:`forward` keeps SDPA; for pictures."""
        q, k, _, grid = self.project(x, hw)
        q = q[:, :, queries + int(self.with_cls_token)]
        return (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1), grid

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        B, _, C = x.shape
        q, k, v, _ = self.project(x, hw)
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0., scale=self.scale)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, -1, C)))


class CvTBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4., qkv_bias: bool = True,
                 drop: float = 0., attn_drop: float = 0., drop_path: float = 0.,
                 act_cfg: dict | None = None, with_cls_token: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ConvAttention(dim, num_heads, qkv_bias, attn_drop=attn_drop, proj_drop=drop,
                                  with_cls_token=with_cls_token)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop,
                       act_layer=functools.partial(build_activation, act_cfg))

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x), *hw))


@contextlib.contextmanager
def _restored_batchnorm_stats(module: nn.Module):
    """Undo what a checkpointed block's recomputation (for backward) does to its BatchNorms'
    running statistics: the original forward already counted this batch once."""
    buffers = [b for m in module.modules() if isinstance(m, _BatchNorm) for b in m.buffers()]
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved):
                buffer.copy_(value)


class CvTStage(nn.Module):
    """Conv token embedding (+ cls token in the last stage), then one block per drop-path rate."""

    def __init__(self, in_channels: int, embed_dim: int, num_heads: int, patch_size: int,
                 patch_stride: int, patch_padding: int, drop_paths: Sequence[float],
                 with_cls_token: bool, with_cp: bool, **block_kwargs) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch_size, patch_stride,
                                      patch_padding)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if with_cls_token else None
        self.pos_drop = nn.Dropout(block_kwargs.get('drop', 0.))
        self.blocks = nn.ModuleList(
            CvTBlock(embed_dim, num_heads, drop_path=dp, with_cls_token=with_cls_token,
                     **block_kwargs) for dp in drop_paths)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, C_in, H, W) -> (N, C, H', W') map of the spatial tokens, and the cls token (or
        None)."""
        x, hw = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.pos_drop(x)
        for block in self.blocks:
            if self.with_cp and torch.is_grad_enabled() and x.requires_grad:
                # Non-reentrant checkpointing; the recompute must not update BatchNorm stats twice.
                x = cp.checkpoint(block, x, hw, use_reentrant=False, context_fn=lambda b=block: (
                    contextlib.nullcontext(), _restored_batchnorm_stats(b)))
            else:
                x = block(x, hw)
        cls_token = None
        if self.cls_token is not None:
            cls_token, x = x[:, :1], x[:, 1:]
        return tokens_to_map(x, *hw), cls_token


@register_model
class CvT(PyramidBackbone):
    """Convolutional vision Transformer backbone (CvT-13, CvT-21, CvT-W24).

    Args:
        arch: '13', '21', 'w24', or a dict with ``embed_dims``, ``num_heads`` and ``depths``
            (one entry per stage, three stages).
        in_channels: image channels.
        out_indices: stages whose maps ``forward`` returns (0, 1, 2 -> strides 4, 8, 16).
        mlp_ratio: MLP hidden width / embedding width.
        qkv_bias: bias in the q/k/v linears.
        drop_rate: dropout after the embeddings, the attention projection and the MLP.
        attn_drop_rate: dropout on the attention weights.
        drop_path_rate: stochastic depth of the last block, ramped linearly from 0 over all blocks.
        act_cfg: MLP activation. The default QuickGELU is the official one;
            ``dict(type='GELU')`` matches Hugging Face's port.
        frozen_stages: stages ``0..frozen_stages`` get ``requires_grad=False`` and stay in eval
            mode; -1 none.
        norm_eval: keep the BatchNorms of the q/k/v projections in eval mode (running statistics)
            while training; worth it with the few images per GPU of detection.
        with_cp: gradient-checkpoint every block (less memory, a second forward while training).
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads an official, Hugging
            Face or pvt_det checkpoint (layout detected); otherwise the official random init.
    """

    arch_zoo = {
        '13': dict(embed_dims=[64, 192, 384], num_heads=[1, 3, 6], depths=[1, 2, 10]),
        '21': dict(embed_dims=[64, 192, 384], num_heads=[1, 3, 6], depths=[1, 4, 16]),
        'w24': dict(embed_dims=[192, 768, 1024], num_heads=[3, 12, 16], depths=[2, 2, 20]),
    }
    family = 'cvt'
    arch_keys = ('embed_dims', 'num_heads', 'depths')
    stage_counts = range(3, 4)
    # Token embedding of each stage (kernel, stride, padding), fixed by the architecture.
    patch_sizes = (7, 3, 3)
    strides = (4, 2, 2)
    paddings = (2, 1, 1)

    def __init__(self, arch: str | dict = '13', in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2), mlp_ratio: float = 4.,
                 qkv_bias: bool = True, drop_rate: float = 0., attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1, act_cfg: dict | None = None,
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 init_cfg: dict | list | None = None) -> None:
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval, with_cp, init_cfg)
        arch = self.arch_settings
        self.embed_dims: list[int] = list(arch['embed_dims'])

        rates = torch.linspace(0, drop_path_rate, sum(arch['depths']), device='cpu').tolist()
        self.stages = nn.ModuleList()
        channels, first_block = in_channels, 0
        for i, (dim, heads, depth) in enumerate(
                zip(self.embed_dims, arch['num_heads'], arch['depths'])):
            self.stages.append(CvTStage(
                channels, dim, heads, self.patch_sizes[i], self.strides[i],
                self.paddings[i], rates[first_block:first_block + depth],
                with_cls_token=i == self.num_stages - 1, with_cp=with_cp, mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate, act_cfg=act_cfg))
            channels, first_block = dim, first_block + depth
        self.min_input_size = self._min_input_size()
        self.apply(_init_module)
        for stage in self.stages:
            if stage.cls_token is not None:
                nn.init.trunc_normal_(stage.cls_token, std=.02)
        self._freeze_stages()

    # ------------------------------------------------------------------------------ construction
    def normalise_arch_name(self, arch: str) -> str:
        return super().normalise_arch_name(arch).removeprefix('cvt_')

    def _min_input_size(self) -> int:
        """Smallest image side for which every stage keeps at least one token."""
        size = 1
        while True:
            side = size
            for kernel, stride, padding in zip(self.patch_sizes, self.strides, self.paddings):
                side = (side + 2 * padding - kernel) // stride + 1
            if side >= 1:  # sides only shrink, so the last stage decides
                return size
            size += 1

    # ----------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Maps ``(N, C_i, H_i, W_i)`` of the stages in ``out_indices`` (strides 4, 8, 16)."""
        self.check_input(x)
        outs = []
        for stage in self.stages[:max(self.out_indices) + 1]:
            x, _ = stage(x)
            outs.append(x)
        return self.selected_maps(outs)

    def forward_cls_token(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's cls token ``(N, C)``: what the classifier's norm and head read."""
        self.check_input(x)
        for stage in self.stages:
            x, cls_token = stage(x)
        return cls_token.squeeze(1)


def _init_module(module: nn.Module) -> None:
    """The official initialisation: truncated-normal linears, unit norms, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LayerNorm, _BatchNorm)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------------------------
# Checkpoint layouts, registered with the shared machinery of ``pvt_det.models.checkpoint``. Each
# converter returns pvt_det's classifier namespace: backbone keys under ``backbone.``, the
# classifier's final norm and head as ``norm.*`` / ``head.*`` (the stage-3 cls token belongs to the
# backbone: it takes part in the stage-3 attention).

_HF_RENAMES = (  # Hugging Face CvtModel -> ours, applied in order to each key
    ('embedding.convolution_embeddings.projection', 'patch_embed.proj'),
    ('embedding.convolution_embeddings.normalization', 'patch_embed.norm'),
    ('.layers.', '.blocks.'),
    ('layernorm_before', 'norm1'),
    ('layernorm_after', 'norm2'),
    ('convolution_projection_query.convolution_projection', 'conv_proj_q'),
    ('convolution_projection_key.convolution_projection', 'conv_proj_k'),
    ('convolution_projection_value.convolution_projection', 'conv_proj_v'),
    ('.convolution.', '.conv.'),
    ('.normalization.', '.bn.'),
    ('attention.attention.', 'attn.'),
    ('projection_query', 'proj_q'),
    ('projection_key', 'proj_k'),
    ('projection_value', 'proj_v'),
    ('attention.output.dense', 'attn.proj'),
    ('intermediate.dense', 'mlp.fc1'),
    ('output.dense', 'mlp.fc2'),
)
_CLASSIFIER_KEYS = ('norm.', 'head.')


def _is_hf_cvt(state_dict: StateDict) -> bool:
    return any(key.startswith(('encoder.stages.', 'cvt.encoder.stages.'))
               and 'convolution_projection_query' in key for key in state_dict)


def convert_hf_cvt(state_dict: StateDict, backbone: nn.Module | None = None) -> StateDict:
    """Hugging Face ``CvtModel`` (``encoder.stages.*``) or ``CvtForImageClassification``
    (``cvt.encoder.stages.*``, ``layernorm``, ``classifier``)."""
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix('cvt.')
        if key.startswith('layernorm.'):
            out['norm.' + key.removeprefix('layernorm.')] = value
        elif key.startswith('classifier.'):
            out['head.' + key.removeprefix('classifier.')] = value
        elif key.startswith('encoder.'):
            key = key.removeprefix('encoder.')
            for old, new in _HF_RENAMES:
                key = key.replace(old, new)
            out['backbone.' + key] = value
        else:
            raise CheckpointError(f'unexpected key {key!r} in a Hugging Face CvT checkpoint')
    return out


def _is_official_cvt(state_dict: StateDict) -> bool:
    return 'stage0.patch_embed.proj.weight' in state_dict and any(
        '.attn.conv_proj_q.' in key for key in state_dict)


def convert_official_cvt(state_dict: StateDict, backbone: nn.Module | None = None) -> StateDict:
    """microsoft/CvT release (``stage0.patch_embed.proj``, ``stage2.cls_token``, ``norm``,
    ``head``): only the stage containers are renamed."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith('stage') and key[5:6].isdigit():
            out[f'backbone.stages.{key[5]}{key[6:]}'] = value
        elif key.startswith(_CLASSIFIER_KEYS):
            out[key] = value
        else:
            raise CheckpointError(f'unexpected key {key!r} in an official CvT checkpoint')
    return out


def _is_own_cvt(state_dict: StateDict) -> bool:
    return any(key.startswith(('stages.0.patch_embed.', 'backbone.stages.0.patch_embed.'))
               for key in state_dict) and any('.attn.conv_proj_q.' in key for key in state_dict)


def convert_own_cvt(state_dict: StateDict, backbone: nn.Module | None = None) -> StateDict:
    """pvt_det's own layout: a bare CvT (``stages.*``), or a classifier / detector / segmentor
    with ``backbone.*`` keys (the rest is kept: a backbone drops it, a classifier loads it)."""
    return {('backbone.' + key if key.startswith('stages.') else key): value
            for key, value in state_dict.items()}


register_layout('cvt', 'pvt_det', _is_own_cvt, convert_own_cvt)
register_layout('cvt', 'official', _is_official_cvt, convert_official_cvt)
register_layout('cvt', 'huggingface', _is_hf_cvt, convert_hf_cvt)
