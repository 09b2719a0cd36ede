"""Stage maps of a backbone and the two ways they are drawn: channel mean, or a PCA to RGB."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .attention import AttentionProbe


def stage_maps(backbone: nn.Module, x: torch.Tensor, probe: AttentionProbe | None = None) -> list[torch.Tensor]:
    """The ``(C, H, W)`` map of every stage (not only ``out_indices``) for the first image of ``x``, in one
    ordinary forward (under ``probe``, if given, which then holds every probed module's input)."""
    saved = backbone.out_indices
    backbone.out_indices = tuple(range(backbone.num_stages))
    try:
        with torch.no_grad(), (probe if probe is not None else contextlib.nullcontext()):
            maps = backbone(x)
    finally:
        backbone.out_indices = saved
    return [m[0].float() for m in maps]


def channel_mean(feature_map: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` -> ``(1, H, W)``."""
    return feature_map.mean(dim=0, keepdim=True)


def pca_rgb(feature_map: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` -> ``(3, H, W)`` in [0, 1]: the map's first three principal components over its
    positions, each scaled to [0, 1] (the colours of the DINO/CLIP feature figures)."""
    channels, height, width = feature_map.shape
    tokens = feature_map.reshape(channels, -1).t().double()
    tokens = tokens - tokens.mean(dim=0)
    _, _, components = torch.linalg.svd(tokens, full_matrices=False)
    projected = tokens @ components[:3].t()
    if projected.shape[1] < 3:  # fewer than 3 channels or positions: pad with zeros
        projected = torch.cat([projected, projected.new_zeros(projected.shape[0], 3 - projected.shape[1])], 1)
    low, high = projected.min(dim=0).values, projected.max(dim=0).values
    scaled = (projected - low) / (high - low).clamp_min(1e-12)
    return scaled.t().reshape(3, height, width).float()
