"""One decorator that registers a module in both mmdet's and mmseg's ``MODELS``."""
from __future__ import annotations

from typing import TypeVar

from mmdet.registry import MODELS as MMDET_MODELS
from mmseg.registry import MODELS as MMSEG_MODELS

T = TypeVar('T', bound=type)


def register_model(cls: T) -> T:
    """Register ``cls`` under its class name in mmdet's and mmseg's MODELS registries."""
    for registry in (MMDET_MODELS, MMSEG_MODELS):
        registry.register_module(module=cls, force=True)
    return cls
