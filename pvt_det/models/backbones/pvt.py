"""Pyramid Vision Transformer v1 (``PVT``) and v2 (``PVTv2``, incl. linear SRA ``b2_li``) as mm* backbones.

v1 and v2 are one implementation that differs by flags: v1 has non-overlapping patch embeddings and a position
embedding per stage; v2 has overlapping patch embeddings, a depthwise conv in the FFN, a LayerNorm after every
stage and optionally linear spatial-reduction attention. Architectures follow the official whai362/PVT code.
SegFormer's Mix Transformer encoders are PVTv2 archs ('mit_b0' ... 'mit_b5'). The checkpoint layouts both versions
load from (official = whai362 and NVlabs/SegFormer, Hugging Face PVT and Segformer, mmdet = also mmseg's
MixVisionTransformer, timm, ours) are registered at the end, each with the LayerNorm eps of its origin.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from pvt_det.registry import register_model
from ..checkpoint import CheckpointError, register_layout
from .base import PyramidBackbone
from ..layers import BLOCK_NORM_EPS, EMBED_NORM_EPS, Block, PatchEmbed, tokens_to_map

ARCH_KEYS = ('embed_dims', 'num_heads', 'depths', 'mlp_ratios', 'sr_ratios')

_WIDE = dict(embed_dims=[64, 128, 320, 512],
             num_heads=[1, 2, 5, 8],
             mlp_ratios=[8, 8, 4, 4],
             sr_ratios=[8, 4, 2, 1])
PVT_ARCHS: dict[str, dict[str, Any]] = {
    'tiny': dict(_WIDE, depths=[2, 2, 2, 2]),
    'small': dict(_WIDE, depths=[3, 4, 6, 3]),
    'medium': dict(_WIDE, depths=[3, 4, 18, 3]),
    'large': dict(_WIDE, depths=[3, 8, 27, 3]),
}
PVT_V2_ARCHS: dict[str, dict[str, Any]] = {
    'b0': dict(_WIDE, embed_dims=[32, 64, 160, 256], depths=[2, 2, 2, 2]),
    'b1': dict(_WIDE, depths=[2, 2, 2, 2]),
    'b2': dict(_WIDE, depths=[3, 4, 6, 3]),
    'b2_li': dict(_WIDE, depths=[3, 4, 6, 3], linear=True),
    'b3': dict(_WIDE, depths=[3, 4, 18, 3]),
    'b4': dict(_WIDE, depths=[3, 8, 27, 3]),
    'b5': dict(_WIDE, mlp_ratios=[4, 4, 4, 4], depths=[3, 6, 40, 3]),
}
# SegFormer's Mix Transformer encoders (NVlabs/SegFormer): PVT v2 with an FFN ratio of 4 in every stage
_MIT = dict(_WIDE, mlp_ratios=[4, 4, 4, 4])
MIT_ARCHS: dict[str, dict[str, Any]] = {
    'mit_b0': dict(_MIT, embed_dims=[32, 64, 160, 256], depths=[2, 2, 2, 2]),
    'mit_b1': dict(_MIT, depths=[2, 2, 2, 2]),
    'mit_b2': dict(_MIT, depths=[3, 4, 6, 3]),
    'mit_b3': dict(_MIT, depths=[3, 4, 18, 3]),
    'mit_b4': dict(_MIT, depths=[3, 8, 27, 3]),
    'mit_b5': dict(_MIT, depths=[3, 6, 40, 3]),
}
PVT_V2_ARCHS.update(MIT_ARCHS)
_MAX_POS_CACHE = 8  # resized v1 position embeddings kept per stage (one per recent input size)


class PVTStage(nn.Module):
    """Patch embedding (+ v1 position embedding), transformer blocks, and (v2) a closing LayerNorm."""

    def __init__(self, in_channels: int, dim: int, depth: int, num_heads: int, mlp_ratio: float,
                 sr_ratio: int, patch_size: int, stride: int, padding: int,
                 pos_grid: tuple[int, int] | None, linear: bool, conv_ffn: bool, out_norm: bool,
                 drop_path_rates: Sequence[float]) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, dim, patch_size, stride, padding)
        self.pos_grid = pos_grid
        num_positions = pos_grid[0] * pos_grid[1] if pos_grid else 0
        self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, dim)) if pos_grid else None
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, sr_ratio, linear, conv_ffn, drop_path=rate)
            for rate in drop_path_rates)
        self.norm = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS) if out_norm else nn.Identity()
        self.with_cp = False
        # Not a buffer: never saved, and entries are re-validated against the parameter's version/storage.
        self._pos_cache: dict[tuple, tuple[tuple[int, int], torch.Tensor]] = {}

    def resized_pos_embed(self, height: int, width: int) -> torch.Tensor:
        """The position embedding resized (bilinear) from its stored grid to ``height x width``.

        Resized copies are cached per size for inference; while the embedding is being trained it is resized in
        the autograd graph instead (cheap next to the blocks, and gradients must reach the stored grid).
        """
        pos = self.pos_embed
        if torch.compiler.is_exporting() or torch.jit.is_tracing():
            return self._resize(pos, height, width)  # even at the stored size: the graph must serve any size
        if (height, width) == self.pos_grid:
            return pos
        if (pos.requires_grad and torch.is_grad_enabled()) or torch.compiler.is_compiling():
            return self._resize(pos, height, width)
        key = (height, width, pos.device, pos.dtype)
        stamp = (pos._version, pos.data_ptr())
        cached = self._pos_cache.get(key)
        if cached is None or cached[0] != stamp:
            if len(self._pos_cache) >= _MAX_POS_CACHE:
                self._pos_cache.pop(next(iter(self._pos_cache)))
            cached = self._pos_cache[key] = (stamp, self._resize(pos.detach(), height, width))
        return cached[1]

    def _resize(self, pos: torch.Tensor, height: int, width: int) -> torch.Tensor:
        grid = tokens_to_map(pos, *self.pos_grid)
        return F.interpolate(grid, size=(height, width), mode='bilinear', align_corners=False) \
            .flatten(2).transpose(1, 2)

    def clear_cache(self) -> None:
        self._pos_cache.clear()

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """NCHW map -> tokens with position embedding added, and the token grid size."""
        tokens, (height, width) = self.patch_embed(x)
        if self.pos_embed is not None:
            tokens = tokens + self.resized_pos_embed(height, width)
        return tokens, (height, width)

    def run_blocks(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        for block in self.blocks:
            if self.with_cp and torch.is_grad_enabled() and tokens.requires_grad:
                tokens = checkpoint(block, tokens, height, width, use_reentrant=False)
            else:
                tokens = block(tokens, height, width)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, (height, width) = self.embed(x)
        return tokens_to_map(self.run_blocks(tokens, height, width), height, width)


class PyramidVisionTransformer(PyramidBackbone):
    """The shared PVT v1/v2 implementation; use :class:`PVT` or :class:`PVTv2`.

    Args:
        arch: a name from ``arch_zoo`` or a dict with ``embed_dims``, ``num_heads``, ``depths``, ``mlp_ratios``,
            ``sr_ratios`` (per-stage lists of equal length, at most 4) and, for v2, optionally ``linear``.
        in_channels: image channels.
        out_indices: stages whose maps ``forward`` returns (strides 4, 8, 16, 32).
        frozen_stages: stages ``0..frozen_stages`` get ``requires_grad=False`` and stay in eval mode; -1 none.
        norm_eval: keep BatchNorm layers (if any were added) in eval mode; PVT itself only uses LayerNorm.
        with_cp: gradient-checkpoint every block (less memory, ~30% more compute while training).
        drop_path_rate: stochastic depth, ramped linearly from 0 over all blocks.
        pretrain_img_size: v1 only: the image size the position embeddings were trained at (their stored grid).
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads any supported checkpoint layout.
    """

    arch_keys = ARCH_KEYS
    patch_sizes: tuple[int, ...] = ()
    strides = (4, 2, 2, 2)
    overlapping = False  # v2: padding k // 2 instead of 0
    use_pos_embed = False  # v1
    conv_ffn = False  # v2
    out_norms = False  # v2

    def __init__(self,
                 arch: str | dict = 'small',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.1,
                 pretrain_img_size: int | Sequence[int] = 224,
                 init_cfg: dict | list | None = None) -> None:
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval, with_cp, init_cfg)
        settings = self.arch_settings
        self.embed_dims: list[int] = list(settings['embed_dims'])
        self.linear = bool(settings.get('linear', False))
        image_size = _pair(pretrain_img_size, 'pretrain_img_size')
        self.pretrain_img_size = image_size if self.use_pos_embed else None

        total_depth = sum(settings['depths'])
        rates = torch.linspace(0, drop_path_rate, total_depth, device='cpu').tolist()
        self.stages = nn.ModuleList()
        reduction, channels, first_block = 1, in_channels, 0
        for i, dim in enumerate(self.embed_dims):
            depth = settings['depths'][i]
            reduction *= self.strides[i]
            pos_grid = (image_size[0] // reduction,
                        image_size[1] // reduction) if self.use_pos_embed else None
            stage = PVTStage(channels, dim, depth, settings['num_heads'][i],
                             settings['mlp_ratios'][i], settings['sr_ratios'][i],
                             self.patch_sizes[i], self.strides[i],
                             self.patch_sizes[i] // 2 if self.overlapping else 0, pos_grid,
                             self.linear, self.conv_ffn, self.out_norms,
                             rates[first_block:first_block + depth])
            stage.with_cp = with_cp
            self.stages.append(stage)
            channels, first_block = dim, first_block + depth
        self.sr_ratios = list(settings['sr_ratios'])
        self.min_input_size = self._min_input_size()
        self.apply(_init_module)
        for stage in self.stages:
            if stage.pos_embed is not None:
                nn.init.trunc_normal_(stage.pos_embed, std=0.02)
        self._freeze_stages()
        self._register_state_dict_hook(_save_norm_eps)

    # ------------------------------------------------------------------------------------------ construction
    def _stage_sizes(self, size: int) -> list[int]:
        sizes = []
        for i in range(self.num_stages):
            padding = self.patch_sizes[i] // 2 if self.overlapping else 0
            size = (size + 2 * padding - self.patch_sizes[i]) // self.strides[i] + 1
            sizes.append(size)
        return sizes

    def _min_input_size(self) -> int:
        """Smallest side for which every stage map is non-empty and covers its spatial-reduction kernel."""
        needs = [1 if self.linear else max(ratio, 1) for ratio in self.sr_ratios]
        size = 1
        while not all(s >= need for s, need in zip(self._stage_sizes(size), needs)):
            size += 1
        return size

    # ------------------------------------------------------------------------------------------------ weights
    @classmethod
    def kwargs_for_state_dict(cls, state_dict: dict) -> dict[str, Any]:
        """Constructor kwargs a converted (pvt_det layout) state dict implies: v1's ``pretrain_img_size``."""
        pos = state_dict.get('backbone.stages.0.pos_embed', state_dict.get('stages.0.pos_embed'))
        if not cls.use_pos_embed or pos is None or not _is_square(pos.shape[1]):
            return {}
        return dict(pretrain_img_size=math.isqrt(pos.shape[1]) * cls.strides[0])

    def weights_changed(self) -> None:
        """Drop cached resized position embeddings (also re-validated lazily, this is just eager cleanup)."""
        for stage in self.stages:
            stage.clear_cache()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, local_metadata: dict, *args, **kwargs) -> None:
        self.weights_changed()
        if 'norm_eps' in local_metadata:  # a file this class saved: the eps it computed with
            self.follow_norm_eps(*local_metadata['norm_eps'])
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    # ------------------------------------------------------------------------------------------ LayerNorm eps
    @property
    def norm_eps(self) -> tuple[float, float]:
        """LayerNorm eps ``(blocks and stage norms, patch-embed and spatial-reduction norms)``."""
        stage = self.stages[0]
        return stage.blocks[0].norm1.eps if len(stage.blocks) else BLOCK_NORM_EPS, stage.patch_embed.norm.eps

    def follow_norm_eps(self, block_eps: float, embed_eps: float) -> None:
        """Compute with the LayerNorm eps of the code a checkpoint was trained with (official: 1e-6 and 1e-5;
        mmdet/mmseg and Hugging Face PVT: 1e-6 everywhere; Hugging Face SegFormer: 1e-5 everywhere). Checkpoint
        layouts call it (see ``register_layout``); the values are saved with the state dict's metadata."""
        for stage in self.stages:
            stage.patch_embed.norm.eps = embed_eps
            if isinstance(stage.norm, nn.LayerNorm):
                stage.norm.eps = block_eps
            for block in stage.blocks:
                block.norm1.eps = block.norm2.eps = block_eps
                if block.attn.norm is not None:
                    block.attn.norm.eps = embed_eps

    # ------------------------------------------------------------------------------------------- train mode
    def train(self, mode: bool = True) -> PyramidVisionTransformer:
        super().train(mode)
        self.weights_changed()
        return self

    # -------------------------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Feature maps ``(N, C_i, H_i, W_i)`` of the stages in ``out_indices`` (strides 4, 8, 16, 32)."""
        self.check_input(x)
        outs = []
        for i, stage in enumerate(self.stages[:max(self.out_indices) + 1]):
            x = stage(x)
            outs.append(x)
        return self.selected_maps(outs)


@register_model
class PVT(PyramidVisionTransformer):
    """PVT v1 (Wang et al., ICCV 2021): archs 'tiny', 'small', 'medium', 'large'.

    Each stage adds a position embedding stored at ``pretrain_img_size``'s grid, resized bilinearly (and cached)
    for other input sizes. Dense outputs leave out the classifier's stage-4 cls token and final norm.
    """

    arch_zoo = PVT_ARCHS
    family = 'pvt'
    patch_sizes = (4, 2, 2, 2)
    use_pos_embed = True


@register_model
class PVTv2(PyramidVisionTransformer):
    """PVT v2 (Wang et al., CVMJ 2022): archs 'b0'...'b5' and 'b2_li' (linear spatial-reduction attention), and
    SegFormer's Mix Transformer encoders 'mit_b0'...'mit_b5' (Xie et al., NeurIPS 2021; the same network with
    an FFN ratio of 4 in every stage)."""

    arch_zoo = PVT_V2_ARCHS
    family = 'pvt_v2'
    patch_sizes = (7, 3, 3, 3)
    optional_arch_keys = frozenset({'linear'})
    overlapping = True
    conv_ffn = True
    out_norms = True

    def __init__(self, arch: str | dict = 'b2', **kwargs: Any) -> None:
        if 'pretrain_img_size' in kwargs:  # accepted (and validated) for config symmetry with v1; v2 has no
            _pair(kwargs.pop('pretrain_img_size'), 'pretrain_img_size')  # position embedding to size
        super().__init__(arch, **kwargs)


def _save_norm_eps(module: PyramidVisionTransformer, state_dict: dict, prefix: str,
                   local_metadata: dict) -> None:
    """Keep the LayerNorm eps in the state dict's metadata (torch.save and mmengine's checkpoints keep it), so
    that our own files reload with the eps their weights were trained with; the tensors are unchanged."""
    local_metadata['norm_eps'] = module.norm_eps


def _init_module(module: nn.Module) -> None:
    """The official initialisation: truncated-normal linears, fan-out normal convs, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[
            1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(not isinstance(v, int) or v <= 0 for v in pair):
        raise ValueError(f'{name} must be a positive int or (height, width), got {value!r}')
    return pair


# ------------------------------------------------------------------------------------------ checkpoint layouts
# Every converter returns pvt_det's classifier namespace: backbone keys under 'backbone.stages.{i}.', and the
# classifier-only keys 'cls_token', 'cls_pos_embed' (v1), 'norm.*' (v1 final norm) and 'head.*'.

# Hugging Face block-parameter names (PvtModel and PvtV2Model spellings) -> ours; key+value fuse into kv.
_HF_BLOCK_NAMES = {
    'layer_norm_1.': 'norm1.',
    'layer_norm_2.': 'norm2.',
    'attention.self.query.': 'attn.q.',
    'attention.query.': 'attn.q.',
    'attention.self.sequence_reduction.': 'attn.sr.',
    'attention.spatial_reduction.': 'attn.sr.',
    'attention.self.layer_norm.': 'attn.norm.',
    'attention.layer_norm.': 'attn.norm.',
    'attention.output.dense.': 'attn.proj.',
    'attention.proj.': 'attn.proj.',
    'mlp.dense1.': 'mlp.fc1.',
    'mlp.dense2.': 'mlp.fc2.',
    'mlp.dwconv.dwconv.': 'mlp.dwconv.',
}
_HF_KEY_VALUE_NAMES = (('attention.self.key.', 'attention.self.value.'), ('attention.key.', 'attention.value.'))
# transformers' Segformer/GLPN encoders: the hub's files (SegformerModel spellings up to transformers 4), and
# the names transformers 5 gives the same parameters (it renames the hub's keys when it loads them).
_SEGFORMER_BLOCK_NAMES = {
    'layer_norm_1.': 'norm1.',
    'layernorm_before.': 'norm1.',
    'attention.self.query.': 'attn.q.',
    'attention.q_proj.': 'attn.q.',
    'attention.self.sr.': 'attn.sr.',
    'attention.sequence_reduction.sequence_reduction.': 'attn.sr.',
    'attention.self.layer_norm.': 'attn.norm.',
    'attention.sequence_reduction.layer_norm.': 'attn.norm.',
    'attention.output.dense.': 'attn.proj.',
    'attention.o_proj.': 'attn.proj.',
    'layer_norm_2.': 'norm2.',
    'layernorm_after.': 'norm2.',
    'mlp.dense1.': 'mlp.fc1.',
    'mlp.fc1.': 'mlp.fc1.',
    'mlp.dwconv.dwconv.': 'mlp.dwconv.',
    'mlp.dense2.': 'mlp.fc2.',
    'mlp.fc2.': 'mlp.fc2.',
}
_SEGFORMER_KEY_VALUE_NAMES = (('attention.self.key.', 'attention.self.value.'),
                              ('attention.k_proj.', 'attention.v_proj.'))


def _unrecognised(key: str) -> CheckpointError:
    return CheckpointError(f'unrecognised key {key!r}')


def _is_square(n: int) -> bool:
    return math.isqrt(n)**2 == n


def _split_cls_row(out: dict, stage_prefix: str, pos: torch.Tensor, has_cls_token: bool,
                   backbone: nn.Module | None) -> None:
    """The official/HF last-stage position embedding carries the cls token's row first: split it off.

    The official *detection* backbones keep that row but have no cls token; it is recognised by the target
    stage's grid (one row more than it stores) or, without a target, by a non-square count one above a square.
    """
    stage = _target_stage(backbone, stage_prefix)
    expected = stage.pos_embed.shape[1] if stage is not None and stage.pos_embed is not None else None
    extra_row = pos.shape[1] == expected + 1 if expected is not None else \
        not _is_square(pos.shape[1]) and _is_square(pos.shape[1] - 1)
    if has_cls_token or extra_row:
        out['cls_pos_embed'], pos = pos[:, :1], pos[:, 1:]
    out[f'{stage_prefix}.pos_embed'] = pos


def _target_stage(backbone: nn.Module | None, stage_prefix: str) -> nn.Module | None:
    """Stage ``i`` of ``backbone`` for ``'backbone.stages.{i}'``, if the backbone has it."""
    stages = getattr(backbone, 'stages', None)
    index = int(stage_prefix.rsplit('.', 1)[1])
    return stages[index] if stages is not None and index < len(stages) else None


def _check_pos_grids(out: dict, backbone: nn.Module) -> dict:
    """Turn a position-embedding size mismatch into advice on ``pretrain_img_size``."""
    for i, stage in enumerate(getattr(backbone, 'stages', [])):
        pos = out.get(f'backbone.stages.{i}.pos_embed')
        if pos is None or stage.pos_embed is None or pos.shape[1] == stage.pos_embed.shape[1]:
            continue
        side, reduction = math.isqrt(pos.shape[1]), 2**(i + 2)
        advice = (f'build the backbone with pretrain_img_size={side * reduction}'
                  if _is_square(pos.shape[1]) else
                  'the checkpoint was trained at a non-square size: pass pretrain_img_size=(H, W)')
        raise CheckpointError(
            f'stage {i} position embedding has {pos.shape[1]} tokens but the model stores a {stage.pos_grid[0]}x'
            f'{stage.pos_grid[1]} grid (pretrain_img_size={backbone.pretrain_img_size}); {advice}')
    return out


def _official_to_ours(state_dict: dict, backbone: nn.Module) -> dict:
    """whai362/PVT classification code: patch_embed{s}, pos_embed{s}, block{s}.{j}, norm{s} (v2), norm, head."""
    out = {}
    pos_stages = [int(key[9:]) for key in state_dict if re.fullmatch(r'pos_embed\d+', key)]
    for key, value in state_dict.items():
        if key == 'cls_token' or key.startswith(('head.', 'norm.')):
            out[key] = value
            continue
        match = re.fullmatch(r'(patch_embed|block|pos_embed|norm)(\d+)(.*)', key)
        if match is None:
            raise _unrecognised(key)
        kind, stage, rest = match[1], f'backbone.stages.{int(match[2]) - 1}', match[3]
        if kind == 'pos_embed':
            has_cls_row = int(match[2]) == max(pos_stages) and 'cls_token' in state_dict
            _split_cls_row(out, stage, value, has_cls_row, backbone)
        elif kind == 'patch_embed':
            out[f'{stage}.patch_embed{rest}'] = value
        elif kind == 'block':
            out[f'{stage}.blocks{rest.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv.")}'] = value
        else:
            out[f'{stage}.norm{rest}'] = value
    return _check_pos_grids(out, backbone)


def _hf_block(out: dict, state_dict: dict, key: str, target: str, rest: str,
              names: dict[str, str] = _HF_BLOCK_NAMES,
              key_value_names: Sequence[tuple[str, str]] = _HF_KEY_VALUE_NAMES) -> None:
    """One Hugging Face block parameter; the separate key and value linears fuse into our ``kv``."""
    for key_name, value_name in key_value_names:
        if rest.startswith(value_name):
            return  # consumed together with its key linear
        if rest.startswith(key_name):
            value_key = key[:len(key) - len(rest)] + value_name + rest[len(key_name):]
            out[f'{target}.attn.kv.{rest[len(key_name):]}'] = torch.cat(
                [state_dict[key], state_dict[value_key]])
            return
    for name, ours in names.items():
        if rest.startswith(name):
            out[f'{target}.{ours}{rest[len(name):]}'] = state_dict[key]
            return
    raise _unrecognised(key)


def _hf_v1_to_ours(state_dict: dict, backbone: nn.Module) -> dict:
    """transformers ``PvtModel`` (``encoder.*``) / ``PvtForImageClassification`` (``pvt.encoder.*``)."""
    state_dict = _strip_model_prefix(state_dict, 'pvt.')
    out = {}
    for key, value in state_dict.items():
        if key.startswith('classifier.'):
            out['head.' + key[len('classifier.'):]] = value
        elif key.startswith('encoder.layer_norm.'):
            out['norm.' + key[len('encoder.layer_norm.'):]] = value
        elif match := re.fullmatch(r'encoder\.patch_embeddings\.(\d+)\.(.+)', key):
            stage, rest = f'backbone.stages.{match[1]}', match[2]
            if rest == 'cls_token':
                out['cls_token'] = value
            elif rest == 'position_embeddings':
                has_cls_row = f'encoder.patch_embeddings.{match[1]}.cls_token' in state_dict
                _split_cls_row(out, stage, value, has_cls_row, backbone)
            elif rest.startswith(('projection.', 'layer_norm.')):
                out[f'{stage}.patch_embed.{rest.replace("projection.", "proj.").replace("layer_norm.", "norm.")}'] \
                    = value
            else:
                raise _unrecognised(key)
        elif match := re.fullmatch(r'encoder\.block\.(\d+)\.(\d+)\.(.+)', key):
            _hf_block(out, state_dict, key, f'backbone.stages.{match[1]}.blocks.{match[2]}',
                      match[3])
        else:
            raise _unrecognised(key)
    return _check_pos_grids(out, backbone)


def _hf_v2_to_ours(state_dict: dict, backbone: nn.Module) -> dict:
    """transformers ``PvtV2Model``/``PvtV2Backbone`` (``encoder.*``), ``PvtV2ForImageClassification``."""
    state_dict = _strip_model_prefix(state_dict, 'pvt_v2.')
    out = {}
    for key, value in state_dict.items():
        if key.startswith('classifier.'):
            out['head.' + key[len('classifier.'):]] = value
            continue
        match = re.fullmatch(r'encoder\.layers\.(\d+)\.(.+)', key)
        if match is None:
            raise _unrecognised(key)
        stage, rest = f'backbone.stages.{match[1]}', match[2]
        if rest.startswith('patch_embedding.'):
            rest = rest[len('patch_embedding.'):].replace('layer_norm.', 'norm.')
            out[f'{stage}.patch_embed.{rest}'] = value
        elif rest.startswith('layer_norm.'):
            out[f'{stage}.norm.{rest[len("layer_norm."):]}'] = value
        elif block := re.fullmatch(r'blocks\.(\d+)\.(.+)', rest):
            _hf_block(out, state_dict, key, f'{stage}.blocks.{block[1]}', block[2])
        else:
            raise _unrecognised(key)
    return out


def segformer_encoder_to_ours(state_dict: dict, encoder_prefix: str) -> dict:
    """transformers' Mix Transformer encoder (SegFormer's ``segformer.encoder.*``, GLPN's ``glpn.encoder.*``)
    under ``encoder_prefix`` -> pvt_det backbone keys (``'backbone.stages.{i}...'``); other keys are ignored.

    Takes the hub's spelling (``{prefix}patch_embeddings.{i}``, ``{prefix}block.{i}.{j}``, ``{prefix}layer_norm.{i}``)
    and transformers 5's (``{model}.stages.{i}.patch_embeddings`` / ``.blocks.{j}`` / ``.layer_norm``, with
    ``encoder_prefix`` ``'{model}.encoder.'``); the separate key and value projections fuse into ``kv``.
    """
    model_prefix = encoder_prefix[:-len('encoder.')] if encoder_prefix.endswith('encoder.') else None
    out = {}
    for key in state_dict:
        if key.startswith(encoder_prefix):
            rest = key[len(encoder_prefix):]
            patterns = (r'patch_embeddings\.(\d+)\.(.+)', r'block\.(\d+)\.(\d+)\.(.+)', r'layer_norm\.(\d+)\.(.+)')
        elif model_prefix is not None and key.startswith(model_prefix + 'stages.'):
            rest = key[len(model_prefix + 'stages.'):]
            patterns = (r'(\d+)\.patch_embeddings\.(.+)', r'(\d+)\.blocks\.(\d+)\.(.+)', r'(\d+)\.layer_norm\.(.+)')
        else:
            continue
        embed, block, norm = (re.fullmatch(pattern, rest) for pattern in patterns)
        if embed:
            out[f'backbone.stages.{embed[1]}.patch_embed.{embed[2].replace("layer_norm.", "norm.")}'] = \
                state_dict[key]
        elif block:
            _hf_block(out, state_dict, key, f'backbone.stages.{block[1]}.blocks.{block[2]}', block[3],
                      _SEGFORMER_BLOCK_NAMES, _SEGFORMER_KEY_VALUE_NAMES)
        elif norm:
            out[f'backbone.stages.{norm[1]}.norm.{norm[2]}'] = state_dict[key]
        else:
            raise _unrecognised(key)
    return out


def _hf_segformer_to_ours(state_dict: dict, backbone: nn.Module) -> dict:
    """transformers ``SegformerModel`` (``encoder.*``), ``SegformerForImageClassification`` /
    ``SegformerForSemanticSegmentation`` (``segformer.encoder.*``). The image classifier's ``classifier.*``
    becomes ``head.*``; a segmentation file's ``decode_head.*`` is not the backbone's: it stays outside
    ``backbone.``, so a backbone load lists it as not loaded (a whole-model load gives it to the decode head,
    see ``pvt_det.models.decode_heads``)."""
    model = 'segformer.' if any(key.startswith('segformer.') for key in state_dict) else ''
    out = segformer_encoder_to_ours(state_dict, model + 'encoder.')
    for key, value in state_dict.items():
        if key.startswith('classifier.'):
            out['head.' + key[len('classifier.'):]] = value
        elif key.startswith('decode_head.'):
            out[key] = value
        elif not key.startswith((model + 'encoder.', model + 'stages.')):
            raise _unrecognised(key)
    return out


def _mmdet_to_ours(state_dict: dict, backbone: nn.Module) -> dict:
    """mmdet ``PyramidVisionTransformer(V2)``: ``layers.{i}.0`` patch embed, ``layers.{i}.1`` [pos embed,]
    blocks with a fused ``in_proj`` and 1x1-conv FFN, ``layers.{i}.2`` stage norm."""
    out = {}
    conv_ffn = any('.ffn.layers.4.' in key for key in state_dict)
    ffn_names = {'0': 'fc1', '1': 'dwconv', '4': 'fc2'} if conv_ffn else {'0': 'fc1', '3': 'fc2'}
    for key, value in state_dict.items():
        match = re.fullmatch(r'layers\.(\d+)\.(\d)\.(.+)', key)
        if match is None:
            raise _unrecognised(key)
        stage, part, rest = f'backbone.stages.{match[1]}', match[2], match[3]
        if part == '0':
            out[f'{stage}.patch_embed.{rest.replace("projection.", "proj.")}'] = value
        elif part == '2':
            out[f'{stage}.norm.{rest}'] = value
        elif rest == '0.pos_embed':
            out[f'{stage}.pos_embed'] = value
        elif block := re.fullmatch(r'(\d+)\.(.+)', rest):
            offset = 1 if f'layers.{match[1]}.1.0.pos_embed' in state_dict else 0
            target, name = f'{stage}.blocks.{int(block[1]) - offset}', block[2]
            if name.startswith('attn.attn.in_proj_'):  # rows: q, then k, v (our kv)
                suffix = name[len('attn.attn.in_proj_'):]
                out[f'{target}.attn.q.{suffix}'], out[f'{target}.attn.kv.{suffix}'] = \
                    value[:value.shape[0] // 3], value[value.shape[0] // 3:]
            elif name.startswith('attn.attn.out_proj.'):
                out[f'{target}.attn.proj.{name[len("attn.attn.out_proj."):]}'] = value
            elif name.startswith(('norm1.', 'norm2.', 'attn.sr.', 'attn.norm.')):
                out[f'{target}.{name}'] = value
            elif ffn := re.fullmatch(r'ffn\.layers\.(\d)\.(weight|bias)', name):
                if ffn[1] not in ffn_names:
                    raise _unrecognised(key)
                layer = ffn_names[ffn[1]]
                if layer != 'dwconv' and ffn[2] == 'weight':
                    value = value.flatten(1)  # 1x1 conv -> linear
                out[f'{target}.mlp.{layer}.{ffn[2]}'] = value
            else:
                raise _unrecognised(key)
        else:
            raise _unrecognised(key)
    return _check_pos_grids(out, backbone)


def _ours_to_ours(state_dict: dict, backbone: nn.Module) -> dict:
    """pvt_det's own layout: a backbone state dict, or a classifier/detector one with 'backbone.' keys."""
    out = {
        ('backbone.' + key if key.startswith('stages.') else key): value
        for key, value in state_dict.items()
    }
    return _check_pos_grids(out, backbone)


def _strip_model_prefix(state_dict: dict, prefix: str) -> dict:
    return {
        (key[len(prefix):] if key.startswith(prefix) else key): value
        for key, value in state_dict.items()
    }


def _has(*keys: str) -> Any:
    return lambda state_dict: any(key in state_dict for key in keys)


def _timm_v2_to_ours(state_dict: dict, backbone: nn.Module) -> dict:
    """timm's ``pvt_v2_*``: the official keys renamed by timm's ``_checkpoint_filter_fn``
    (patch_embed{s} -> stages.{s-1}.downsample, block{s} -> stages.{s-1}.blocks, norm{s} ->
    stages.{s-1}.norm, dwconv.dwconv -> dwconv). Undo the renaming, then convert as official."""
    official = {}
    for key, value in state_dict.items():
        key = re.sub(r'^patch_embed\.', 'patch_embed1.', key)
        key = re.sub(r'^stages\.(\d+)\.downsample\.', lambda m: f'patch_embed{int(m[1]) + 1}.', key)
        key = re.sub(r'^stages\.(\d+)\.blocks\.', lambda m: f'block{int(m[1]) + 1}.', key)
        key = re.sub(r'^stages\.(\d+)\.norm\.', lambda m: f'norm{int(m[1]) + 1}.', key)
        official[key.replace('.mlp.dwconv.', '.mlp.dwconv.dwconv.')] = value
    return _official_to_ours(official, backbone)


def _register_layouts() -> None:
    official = lambda sd: 'patch_embed1.proj.weight' in sd  # noqa: E731
    mmdet = lambda sd: 'layers.0.0.projection.weight' in sd  # noqa: E731
    hf_v1 = _has('encoder.patch_embeddings.0.projection.weight',
                 'pvt.encoder.patch_embeddings.0.projection.weight')
    hf_v2 = _has('encoder.layers.0.patch_embedding.proj.weight',
                 'pvt_v2.encoder.layers.0.patch_embedding.proj.weight')
    ours_v1 = _has('stages.0.pos_embed', 'backbone.stages.0.pos_embed')
    ours_v2 = lambda sd: any(
        key.startswith(('stages.0.', 'backbone.stages.0.')) and  # noqa: E731
        key.endswith('.mlp.dwconv.weight') for key in sd)
    hf_segformer = _has('encoder.patch_embeddings.0.proj.weight', 'segformer.encoder.patch_embeddings.0.proj.weight',
                        'stages.0.patch_embeddings.proj.weight', 'segformer.stages.0.patch_embeddings.proj.weight')
    # LayerNorm eps of the code behind each layout (blocks/stage norms, patch-embed/SR norms); see
    # docs/backbones.md for what the difference measures.
    official_eps, everywhere_1e6, everywhere_1e5 = (BLOCK_NORM_EPS, EMBED_NORM_EPS), (1e-6, 1e-6), (1e-5, 1e-5)
    register_layout('pvt', 'official', lambda sd: official(sd) and 'pos_embed1' in sd,
                    _official_to_ours, official_eps)
    register_layout('pvt', 'huggingface', hf_v1, _hf_v1_to_ours, everywhere_1e6)
    register_layout('pvt', 'mmdet', lambda sd: mmdet(sd) and 'layers.0.1.0.pos_embed' in sd,
                    _mmdet_to_ours, everywhere_1e6)
    register_layout('pvt', 'pvt_det', ours_v1, _ours_to_ours)
    # NVlabs/SegFormer's mit_b*.pth use whai362's key names: the 'official' layout.
    register_layout('pvt_v2', 'official', lambda sd: official(sd) and 'pos_embed1' not in sd,
                    _official_to_ours, official_eps)
    register_layout('pvt_v2', 'huggingface', hf_v2, _hf_v2_to_ours, everywhere_1e6)
    register_layout('pvt_v2', 'huggingface_segformer', hf_segformer, _hf_segformer_to_ours, everywhere_1e5)
    register_layout('pvt_v2', 'timm', _has('patch_embed.proj.weight'), _timm_v2_to_ours, official_eps)
    # mmdet's PyramidVisionTransformerV2 and mmseg's MixVisionTransformer share their module tree and key names.
    register_layout('pvt_v2', 'mmdet', lambda sd: mmdet(sd) and 'layers.0.1.0.pos_embed' not in sd,
                    _mmdet_to_ours, everywhere_1e6)
    register_layout('pvt_v2', 'pvt_det', lambda sd: ours_v2(sd) and not ours_v1(sd), _ours_to_ours)


_register_layouts()
