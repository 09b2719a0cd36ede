"""Building blocks shared by the PVT v1 and v2 backbones (written once, configured by flags).

Tokens travel as ``(B, N, C)``; the few places that need a spatial map (spatial reduction, depthwise conv)
view them as NCHW with ``transpose(1, 2).reshape(...)``, which is a free channels-last view rather than a copy.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# The official PVT code uses eps=1e-6 in block/stage LayerNorms and torch's default 1e-5 in the patch embedding
# and attention spatial-reduction LayerNorms; checkpoints were trained that way.
BLOCK_NORM_EPS = 1e-6
EMBED_NORM_EPS = 1e-5


def tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, H*W, C)`` tokens as an ``(B, C, H, W)`` map (a channels-last view, no copy)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)


def map_to_tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` map as ``(B, H*W, C)`` tokens (free for channels-last maps)."""
    return feature_map.flatten(2).transpose(1, 2)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` run channels-last. Its inputs are views of (B, N, C) tokens, i.e. channels-last maps, and
    oneDNN keeps that layout (output = tokens again, no copies) only for a channels-last weight; otherwise it
    transposes input and output and runs a far slower NCHW depthwise kernel. The parameter itself stays
    contiguous (safetensors and other tools expect that); the per-call weight copy is tiny."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight.to(memory_format=torch.channels_last), self.bias)


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0], ) + (1, ) * (x.ndim - 1)).bernoulli_(keep_prob)
        return x * mask.div_(keep_prob)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class PatchEmbed(nn.Module):
    """Strided conv + LayerNorm. v1: kernel == stride (non-overlapping); v2: kernel 7/3, padding k//2."""

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 kernel_size: int,
                 stride: int,
                 padding: int = 0) -> None:
        super().__init__()
        self.proj = Conv2d(in_channels, embed_dims, kernel_size, stride, padding)
        self.norm = nn.LayerNorm(embed_dims, eps=EMBED_NORM_EPS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)
        height, width = x.shape[-2:]
        return self.norm(map_to_tokens(x)), (height, width)


class SpatialReductionAttention(nn.Module):
    """Multi-head attention whose keys/values come from a spatially reduced map.

    ``sr_ratio > 1``: a ``sr_ratio``-strided conv + LayerNorm (PVT v1/v2). ``linear=True`` (PVTv2-li): adaptive
    average pooling to 7x7, 1x1 conv, LayerNorm and GELU, so the cost is linear in the number of tokens.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 sr_ratio: int = 1,
                 linear: bool = False,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embedding width {dim} is not divisible by num_heads={num_heads}')
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.linear = linear
        self.attn_drop = attn_drop
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.pool = nn.AdaptiveAvgPool2d(7) if linear else None
        self.act = nn.GELU() if linear else None
        if linear or sr_ratio > 1:
            kernel = 1 if linear else sr_ratio
            self.sr = Conv2d(dim, dim, kernel_size=kernel, stride=kernel)
            self.norm = nn.LayerNorm(dim, eps=EMBED_NORM_EPS)
        else:
            self.sr = self.norm = None

    def key_tokens(self, x: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, tuple[int, int]]:
        """The tokens keys and values are computed from (``x`` itself, or its reduced map), and their grid."""
        if self.sr is None:
            return x, (height, width)
        reduced = tokens_to_map(x, height, width)
        if self.pool is not None:
            reduced = self.pool(reduced)
        reduced = self.sr(reduced)
        x = self.norm(map_to_tokens(reduced))
        if self.act is not None:
            x = self.act(x)
        return x, (reduced.shape[-2], reduced.shape[-1])

    def attention_weights(self, x: torch.Tensor, height: int, width: int,
                          queries: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """``softmax(q k^T / sqrt(head_dim))`` of the tokens ``queries`` (indices into the N tokens) over the
        keys, ``(B, heads, len(queries), N')``, and the keys' grid; from the same q, kv, sr/pool and norm as
        :meth:`forward`, which keeps SDPA and never materialises these weights. For pictures and tests."""
        batch, _, dim = x.shape
        head_dim = dim // self.num_heads
        q = self.q(x[:, queries]).reshape(batch, -1, self.num_heads, head_dim).transpose(1, 2)
        keys, grid = self.key_tokens(x, height, width)
        k = self.kv(keys)[..., :dim].reshape(batch, -1, self.num_heads, head_dim).transpose(1, 2)
        return (q @ k.transpose(-2, -1) * head_dim ** -0.5).softmax(dim=-1), grid

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, num_tokens, dim = x.shape
        head_dim = dim // self.num_heads
        q = self.q(x).reshape(batch, num_tokens, self.num_heads, head_dim).transpose(1, 2)
        x = self.key_tokens(x, height, width)[0]
        # Contiguous k/v (few tokens, a cheap copy): SDPA's CPU backward is ~10x slower on the strided views.
        kv = self.kv(x).reshape(batch, -1, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv.contiguous().unbind(0)
        x = F.scaled_dot_product_attention(q,
                                           k,
                                           v,
                                           dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(batch, num_tokens, dim)))


class Mlp(nn.Module):
    """FFN. ``dwconv=True`` adds PVTv2's 3x3 depthwise conv after fc1; ``linear=True`` also a ReLU before it.
    ``act_layer`` builds the activation (CvT passes its QuickGELU)."""

    # Inference runs the FFN over bands of rows whose hidden activations take about this many bytes: they stay
    # in cache and their buffers are reused, instead of a fresh hidden tensor per layer (42 MB at stage 1 of a
    # 512x640 image) that costs page faults and memory traffic. Same arithmetic, same outputs (to rounding).
    band_bytes = 2 ** 21
    # Only maps of at least this many bands: smaller hidden tensors are reused by the allocator anyway, and
    # splitting them only shrinks the matrix products.
    min_bands = 4

    def __init__(self,
                 dim: int,
                 hidden_dim: int,
                 dwconv: bool = False,
                 linear: bool = False,
                 drop: float = 0.0,
                 act_layer: Callable[[], nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.relu = nn.ReLU(inplace=True) if linear else None
        self.dwconv = Conv2d(hidden_dim, hidden_dim, 3, 1, 1, groups=hidden_dim) if dwconv else None
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        band_rows = self.band_bytes // (width * self.fc1.out_features * x.element_size())
        builds_graph = torch.is_grad_enabled() and (x.requires_grad or self.fc1.weight.requires_grad)
        # Under autocast the plain path's linears run in low precision; the banded path's out= products would not.
        inference = not (self.training or builds_graph or _tracing() or torch.is_autocast_enabled(x.device.type))
        is_image = x.shape[1] == height * width  # not e.g. CvT's stage 3 with its cls token
        if inference and is_image and 0 < band_rows * self.min_bands <= height:
            return self._forward_in_bands(x, height, width, band_rows)
        x = self.fc1(x)
        if self.relu is not None:
            x = self.relu(x)
        if self.dwconv is not None:
            x = map_to_tokens(self.dwconv(tokens_to_map(x, height, width)))
        return self.drop(self.fc2(self.drop(self._activate(x))))

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.act, nn.GELU) and not x.requires_grad:  # in place: no second hidden-sized buffer
            return torch.ops.aten.gelu_(x, approximate=self.act.approximate)
        return self.act(x)

    def _forward_in_bands(self, x: torch.Tensor, height: int, width: int, band_rows: int) -> torch.Tensor:
        """Inference: fc1 -> (dwconv) -> act -> fc2 for ``band_rows`` image rows at a time. The 3x3 depthwise
        conv of a band needs one hidden row above and below it: the two boundary rows are carried over to the
        next band rather than recomputed, so the FLOPs are exactly those of :meth:`forward`."""
        halo = 1 if self.dwconv is not None else 0
        out = x.new_empty(*x.shape[:2], self.fc2.out_features)
        fc1_weight, fc2_weight = self.fc1.weight.t(), self.fc2.weight.t()
        if halo:
            dw_weight = self.dwconv.weight.to(memory_format=torch.channels_last)
        # hidden rows [first, last) live in `hidden`; two buffers alternate so carried rows never overlap.
        buffers = [x.new_empty((band_rows + 2 * halo) * width, self.fc1.out_features) for _ in range(1 + halo)]
        for image in range(x.shape[0]):
            first = last = 0
            carried = None
            for top in range(0, height, band_rows):
                bottom = min(top + band_rows, height)
                need_first, need_last = max(top - halo, 0), min(bottom + halo, height)
                hidden = buffers[(top // band_rows) % len(buffers)][:(need_last - need_first) * width]
                kept = 0
                if carried is not None:  # rows [need_first, last) were computed for the previous band
                    kept = (last - need_first) * width
                    hidden[:kept].copy_(carried[(need_first - first) * width:])
                new_rows = hidden[kept:]
                torch.addmm(self.fc1.bias, x[image, (need_first * width + kept):need_last * width], fc1_weight,
                            out=new_rows)
                if self.relu is not None:
                    self.relu(new_rows)
                first, last, carried = need_first, need_last, hidden
                if halo:
                    # Zero padding only at the image's top/bottom edge; inside, the real neighbour rows are there.
                    rows = hidden.t().reshape(1, -1, need_last - need_first, width)
                    pad_top, pad_bottom = int(need_first == top), int(need_last == bottom)
                    band = F.conv2d(F.pad(rows, (0, 0, pad_top, pad_bottom)) if pad_top or pad_bottom else rows,
                                    dw_weight, self.dwconv.bias, padding=(0, 1), groups=rows.shape[1])
                    band = map_to_tokens(band)[0]
                else:
                    band = hidden
                torch.addmm(self.fc2.bias, self._activate(band), fc2_weight,
                            out=out[image, top * width:bottom * width])
        return out


def _tracing() -> bool:
    """Exporting or compiling: the plain forward, whose graph does not depend on the input size."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: float,
                 sr_ratio: int = 1,
                 linear: bool = False,
                 conv_ffn: bool = False,
                 qkv_bias: bool = True,
                 drop: float = 0.0,
                 attn_drop: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.attn = SpatialReductionAttention(dim, num_heads, sr_ratio, linear, qkv_bias, attn_drop,
                                              drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dwconv=conv_ffn, linear=linear, drop=drop)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), height, width))
        return x + self.drop_path(self.mlp(self.norm2(x), height, width))
