"""ImageNet-style classifiers on top of the backbones, laid out as the official models so that their
classification checkpoints (head included) load strictly.

``build_classifier('pvt_v2_b2', num_classes=1000, checkpoint='pvt_v2_b2.pth')``. Other families add entries with
:func:`register_classifier`.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .backbones.cvt import CvT
from .backbones.pvt import PVT, PVTv2, PyramidVisionTransformer
from .checkpoint import StateDict, load_pretrained
from .layers import BLOCK_NORM_EPS

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_classifier(name: str, builder: Callable[..., nn.Module]) -> None:
    """``builder(num_classes=..., **backbone_kwargs)`` returns a module with a ``backbone`` attribute whose
    ``family`` names its checkpoint layouts."""
    _BUILDERS[name] = builder


def classifier_names() -> list[str]:
    return sorted(_BUILDERS)


def build_classifier(name: str,
                     num_classes: int = 1000,
                     checkpoint: str | os.PathLike | StateDict | None = None,
                     **backbone_kwargs: Any) -> nn.Module:
    """Build classifier ``name`` (see :func:`classifier_names`), optionally loading a full classification
    checkpoint of any supported layout strictly (head included)."""
    if name not in _BUILDERS:
        raise ValueError(f'unknown classifier {name!r}; valid names: {classifier_names()}')
    model = _BUILDERS[name](num_classes=num_classes, **backbone_kwargs)
    if checkpoint is not None:
        load_pretrained(model, checkpoint, model.backbone.family)
    return model


class PVTClassifier(nn.Module):
    """The official PVT classification model.

    v1 prepends a cls token (with its own position-embedding row) to the last stage, then applies a final
    LayerNorm and classifies the cls token; v2 averages the (already normalised) last-stage tokens.
    """

    def __init__(self, backbone: PyramidVisionTransformer, num_classes: int = 1000) -> None:
        super().__init__()
        self.backbone = backbone
        dim = backbone.embed_dims[-1]
        self.use_cls_token = backbone.use_pos_embed
        if self.use_cls_token:
            if backbone.sr_ratios[-1] != 1:
                raise ValueError(
                    'the v1 classifier puts a cls token into the last stage, which needs '
                    f'sr_ratios[-1] == 1 (got {backbone.sr_ratios[-1]})')
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.cls_pos_embed = nn.Parameter(torch.zeros(1, 1, dim))
            self.norm = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            nn.init.trunc_normal_(self.cls_pos_embed, std=0.02)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector ``(N, C)`` fed to the head."""
        self.backbone.check_input(x)
        *early, last = self.backbone.stages
        for stage in early:
            x = stage(x)
        tokens, (height, width) = last.embed(x)
        if self.use_cls_token:
            cls_token = (self.cls_token + self.cls_pos_embed).expand(tokens.shape[0], -1, -1)
            tokens = torch.cat((cls_token, tokens), dim=1)
        tokens = last.run_blocks(tokens, height, width)
        return self.norm(tokens[:, 0]) if self.use_cls_token else tokens.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _pvt_builder(backbone_cls: type[PyramidVisionTransformer],
                 arch: str) -> Callable[..., nn.Module]:

    def build(num_classes: int = 1000, **backbone_kwargs: Any) -> PVTClassifier:
        backbone_kwargs.setdefault('arch', arch)  # an explicit arch (e.g. a custom dict) wins
        return PVTClassifier(backbone_cls(**backbone_kwargs), num_classes)

    return build


for _arch in PVT.arch_zoo:
    register_classifier(f'pvt_{_arch}', _pvt_builder(PVT, _arch))
for _arch in PVTv2.arch_zoo:  # SegFormer's MiT encoders keep their own names ('mit_b0', not 'pvt_v2_mit_b0')
    register_classifier(_arch if _arch.startswith('mit_') else f'pvt_v2_{_arch}', _pvt_builder(PVTv2, _arch))


# --------------------------------------------------------------------------------------------------------- CvT
class CvTClassifier(nn.Module):
    """The official CvT classification model: the last stage's cls token -> LayerNorm -> Linear."""

    def __init__(self, backbone: CvT, num_classes: int = 1000) -> None:
        super().__init__()
        self.backbone = backbone
        dim = backbone.embed_dims[-1]
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised cls token ``(N, C)`` fed to the head."""
        return self.norm(self.backbone.forward_cls_token(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _cvt_builder(arch: str) -> Callable[..., nn.Module]:

    def build(num_classes: int = 1000, **backbone_kwargs: Any) -> CvTClassifier:
        backbone_kwargs.setdefault('arch', arch)  # an explicit arch (e.g. a custom dict) wins
        return CvTClassifier(CvT(**backbone_kwargs), num_classes)

    return build


for _arch in CvT.arch_zoo:
    register_classifier(f'cvt_{_arch}', _cvt_builder(_arch))
