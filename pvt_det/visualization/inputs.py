"""The backbone to picture and its input: a classifier's backbone by name, or a detector/segmentor config's
backbone (its checkpoint loaded strictly) with the config's own test resize and mean/std."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# The classifiers' ImageNet preprocessing (RGB order), as the official PVT/CvT training used.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass
class Preprocessing:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    bgr_to_rgb: bool  # False: the network takes BGR images (mmdet's default)
    scale: tuple[int, int] | None  # mmcv (w, h) scale of a Resize, None: keep the size
    keep_ratio: bool = True

    def resized(self, image: np.ndarray) -> np.ndarray:
        import mmcv
        if self.scale is None:
            return image
        if self.keep_ratio:
            return mmcv.imrescale(image, self.scale)
        return mmcv.imresize(image, self.scale)

    def tensor(self, image_rgb: np.ndarray) -> torch.Tensor:
        """``(1, 3, H, W)`` network input from an RGB uint8 image."""
        image = self.resized(image_rgb)
        if not self.bgr_to_rgb:
            image = image[..., ::-1]
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return ((x - mean) / std)[None]


def classifier_input(max_side: int = 512) -> Preprocessing:
    """ImageNet mean/std; the image kept as it is, or rescaled so that its longer side is ``max_side``."""
    return Preprocessing(IMAGENET_MEAN, IMAGENET_STD, bgr_to_rgb=True, scale=(max_side, max_side))


def config_preprocessing(cfg) -> Preprocessing:
    """The mean/std of ``cfg.model.data_preprocessor`` and the ``Resize`` of its test pipeline."""
    pre = cfg.model.get('data_preprocessor') or {}
    pipeline = (cfg.get('test_dataloader') or {}).get('dataset', {}).get('pipeline') or cfg.get('test_pipeline') or []
    resize = next((step for step in pipeline if isinstance(step, dict) and step.get('type') in ('Resize',
                                                                                                  'mmdet.Resize')),
                  None)
    scale = tuple(resize['scale']) if resize and resize.get('scale') else None
    return Preprocessing(tuple(pre.get('mean', (0.0, 0.0, 0.0))), tuple(pre.get('std', (1.0, 1.0, 1.0))),
                         bool(pre.get('bgr_to_rgb', False)), scale,
                         bool(resize.get('keep_ratio', True)) if resize else True)


def build_config_backbone(config: str, checkpoint: str | None) -> tuple[nn.Module, Preprocessing]:
    """The backbone of the detector/segmentor that ``config`` builds, with ``checkpoint`` (a whole-model
    checkpoint, or a backbone's own) loaded strictly, and the config's preprocessing."""
    from mmengine.runner import load_checkpoint

    from pvt_det.cli import ToolError
    from pvt_det.config.loading import load_config, register_scope
    from pvt_det.config.preflight import check_checkpoint
    cfg = load_config(config)
    task = register_scope(cfg)
    if 'backbone' not in cfg.model:
        raise ToolError(f'{config}: model has no backbone to picture')
    cfg.model.backbone.init_cfg = None  # no download: the checkpoint (or random weights) is what is shown
    cfg.model.pop('pretrained', None)
    if task == 'det':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    if checkpoint:
        check_checkpoint(checkpoint)
        state = torch.load(checkpoint, map_location='cpu', weights_only=False)
        state = state.get('state_dict', state) if isinstance(state, dict) else state
        whole_model = any(key.startswith('backbone.') for key in state)
        try:
            load_checkpoint(model if whole_model else model.backbone, checkpoint, map_location='cpu', strict=True,
                            logger='silent')
        except RuntimeError as e:
            what = 'the model of' if whole_model else 'the backbone of'
            raise ToolError(f'{checkpoint} does not fit {what} {config}: {" ".join(str(e).split())[:300]}') from e
    return model.backbone.eval(), config_preprocessing(cfg)
