"""The attention of a few query tokens, from the model's own modules, mapped back onto the image.

:class:`AttentionProbe` hooks one block's attention module per stage and keeps its input during one ordinary
forward (the SDPA path runs as always and nobody else pays for the probe); afterwards each module's
``attention_weights`` computes ``softmax(q k^T * scale)`` for the chosen queries only, over its (reduced) keys.
A key summarises a patch of the stage's token grid (an ``sr_ratio`` x ``sr_ratio`` block, one of the 7x7
adaptive-pooling bins of linear SRA, or, for CvT's stride-2 conv keys, the 2x2 cell its window is centred on;
where bins or windows overlap, each key gets its own cell of a partition, so overlaps draw no grid lines);
:func:`spread_over_tokens` spreads each key's weight evenly over its patch, so the drawn map keeps the weights'
total mass.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pvt_det.models.backbones.cvt import ConvAttention
from pvt_det.models.layers import SpatialReductionAttention

ATTENTION_TYPES = (SpatialReductionAttention, ConvAttention)


@dataclass
class StageAttention:
    """The attention of the queries in one stage (first image of the batch)."""

    weights: torch.Tensor  # (heads, queries, keys): each row sums to 1
    key_grid: tuple[int, int]  # the spatial keys' grid
    token_grid: tuple[int, int]  # the stage's token grid (queries live here)
    extra_keys: int  # keys before the spatial ones (CvT's cls token)
    module: nn.Module

    @property
    def head_mean(self) -> torch.Tensor:
        """``(queries, keys)``: the weights averaged over heads."""
        return self.weights.mean(dim=0)

    def spatial(self) -> torch.Tensor:
        """``(queries, key_h, key_w)``: head-averaged weights of the spatial keys, on the keys' grid."""
        return self.head_mean[:, self.extra_keys:].reshape(-1, *self.key_grid)

    def on_tokens(self) -> torch.Tensor:
        """``(queries, H, W)``: :meth:`spatial` spread over the stage's token grid."""
        return spread_over_tokens(self.spatial(), self.module, self.token_grid)


def stage_attention_modules(backbone: nn.Module, block: int = -1) -> list[nn.Module]:
    """The attention module of block ``block`` of every stage of a pvt_det PVT/CvT backbone."""
    stages = getattr(backbone, 'stages', None)
    modules = []
    for stage in stages or ():
        attn = getattr(stage.blocks[block], 'attn', None) if len(getattr(stage, 'blocks', ())) else None
        if isinstance(attn, ATTENTION_TYPES):
            modules.append(attn)
    if not modules or len(modules) != len(stages):
        raise ValueError(f'{type(backbone).__name__} is not a pvt_det PVT/CvT backbone: no attention module in '
                         'every stage to probe')
    return modules


class AttentionProbe:
    """Capture the inputs of the given attention modules during forwards inside ``with``."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.modules = modules
        self.inputs: dict[int, tuple] = {}
        self._handles: list = []

    def __enter__(self) -> AttentionProbe:
        for index, module in enumerate(self.modules):
            self._handles.append(module.register_forward_hook(self._keep(index)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _keep(self, index: int):
        def hook(module, args, output):
            self.inputs[index] = tuple(a.detach() if torch.is_tensor(a) else a for a in args)
        return hook

    def attention(self, index: int, queries: torch.Tensor) -> StageAttention:
        """Module ``index``'s attention for the token indices ``queries`` of its last captured forward."""
        if index not in self.inputs:
            raise RuntimeError(f'attention module {index} did not run: run a forward inside the probe first')
        module, args = self.modules[index], self.inputs[index]
        with torch.no_grad():
            if isinstance(module, ConvAttention):  # called as attn(x, (height, width))
                x, token_grid = args
                weights, key_grid = module.attention_weights(x, token_grid, queries)
            else:  # attn(x, height, width)
                x, *token_grid = args
                weights, key_grid = module.attention_weights(x, *token_grid, queries)
        extra = weights.shape[-1] - key_grid[0] * key_grid[1]
        return StageAttention(weights[0].float(), key_grid, tuple(token_grid), extra, module)


def query_tokens(points: list[tuple[float, float]], image_hw: tuple[int, int],
                 token_grid: tuple[int, int]) -> torch.Tensor:
    """Indices into a ``token_grid`` of the tokens under ``points`` (x, y in pixels of an ``image_hw`` input)."""
    (height, width), (rows, cols) = image_hw, token_grid
    indices = []
    for x, y in points:
        row = min(max(int(y * rows / height), 0), rows - 1)
        col = min(max(int(x * cols / width), 0), cols - 1)
        indices.append(row * cols + col)
    return torch.tensor(indices, dtype=torch.long)


def key_footprints(module: nn.Module, size: int, keys: int, axis: int) -> torch.Tensor:
    """``(keys, size)``: row ``i`` spreads key ``i`` evenly over the tokens (along one axis) it summarises."""
    if isinstance(module, ConvAttention):
        # Key i is centred on token i * stride; its 3x3 windows overlap, so each key gets its own stride cell
        # (a partition, as nearest upsampling does) rather than the window: overlaps would draw a checkerboard.
        stride = module.conv_proj_k.conv.stride[axis]
        spans = [(i * stride, (i + 1) * stride) for i in range(keys)]
    elif module.linear:
        # Adaptive pooling bins [floor(i*size/keys), ceil((i+1)*size/keys)) overlap by a token where size is not a
        # multiple of 7; as for CvT each key gets its own part of a partition instead (at least one token).
        spans = [((i * size) // keys, max(((i + 1) * size) // keys, (i * size) // keys + 1)) for i in range(keys)]
    elif module.sr is not None:
        ratio = module.sr_ratio
        spans = [(i * ratio, (i + 1) * ratio) for i in range(keys)]
    else:
        spans = [(i, i + 1) for i in range(keys)]
    footprint = torch.zeros(keys, size)
    for i, (start, end) in enumerate(spans):
        start, end = max(start, 0), min(end, size)
        footprint[i, start:end] = 1.0 / (end - start)
    return footprint


def spread_over_tokens(weights: torch.Tensor, module: nn.Module, token_grid: tuple[int, int]) -> torch.Tensor:
    """``(Q, key_h, key_w)`` weights -> ``(Q, H, W)`` on the token grid; each query's total is kept."""
    rows = key_footprints(module, token_grid[0], weights.shape[-2], axis=0)
    cols = key_footprints(module, token_grid[1], weights.shape[-1], axis=1)
    return rows.t() @ weights.float() @ cols
