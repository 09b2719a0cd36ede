"""Pre-flight for depth estimation configs (mmseg's ``DepthEstimator``): depth range and scale, checked before
anything is built (called from :func:`pvt_det.config.preflight.check_config`, check ``'depth_range'``).

A depth model trains silently into nonsense when the numbers disagree: 16-bit NYU PNGs are millimetres, so a
``LoadDepthAnnotation`` without ``depth_rescale_factor=1e-3`` hands the loss depths of thousands of "metres" that
a ``sigmoid * max_depth`` head can never reach; batches padded with mmseg's segmentation default (255) teach 255 m
at the borders; the Eigen crop of ``DepthMetric(crop_type='nyu_crop')`` assumes NYU's 480x640 images.
"""
from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

from mmengine.config import Config

CHECK = 'depth_range'
DESCRIPTION = ("depth configs: the data's depths (after depth_rescale_factor) fit the head's max_depth, "
               'padded depth is 0, the Eigen crop fits the images')
_SAMPLED_MAPS = 4  # depth maps read per dataset: enough to catch a wrong scale, cheap on a large set
_NYU_CROP_NEEDS = (471, 601)  # DepthMetric's 'nyu_crop' takes rows 45:471 and columns 41:601


def is_depth_config(cfg: Config) -> bool:
    model = cfg.get('model') or {}
    while isinstance(model.get('module'), dict) and 'backbone' not in model:  # a TTA wrapper
        model = model['module']
    return model.get('type') == 'DepthEstimator'


def check_depth(cfg: Config, datasets: Sequence[tuple[str, dict]], checks: Any) -> None:
    """Fail (``checks.fail``) with one line when a depth config's scale or range is inconsistent (module doc).
    ``datasets`` are ``check_config``'s (config key, leaf dataset) pairs; non-depth configs pass untouched."""
    if not is_depth_config(cfg) or not checks.wanted(CHECK):
        return
    model = cfg.model
    head = model.get('decode_head') or {}
    max_depth = head.get('max_depth')
    preprocessor = model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    if preprocessor.get('seg_pad_val', 255) != 0:
        checks.fail(CHECK, f"model.data_preprocessor.seg_pad_val={preprocessor.get('seg_pad_val', 255)!r}: padded "
                    'depth would read as that many metres; set seg_pad_val=0 (0 = no measurement, ignored by '
                    'SiLogLoss and DepthMetric)')
    for key, dataset in datasets:
        factor = _depth_rescale_factor(dataset.get('pipeline') or [])
        if factor is None:
            continue
        maps = _depth_maps(dataset)
        if max_depth is not None and maps:
            _check_scale(key, maps, factor, float(max_depth), checks)
    for name in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(name) or {}
        if isinstance(evaluator, dict) and evaluator.get('crop_type') == 'nyu_crop':
            loader = cfg.get(name.replace('_evaluator', '_dataloader')) or {}
            _check_nyu_crop(name, loader.get('dataset') or {}, checks)


def _depth_rescale_factor(pipeline: list) -> float | None:
    for step in pipeline:
        if isinstance(step, dict) and step.get('type') == 'LoadDepthAnnotation':
            return float(step.get('depth_rescale_factor', 1.0))
    return None


def _folder(dataset: dict, name: str) -> str | None:
    prefix = (dataset.get('data_prefix') or {}).get(name)
    if prefix is None:
        return None
    root = dataset.get('data_root') or ''
    path = prefix if osp.isabs(prefix) else osp.join(root, prefix)
    return path if '://' not in path and osp.isdir(path) else None


def _first_files(folder: str, suffix: str, count: int) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(suffix))[:count]


def _depth_maps(dataset: dict) -> list[str]:
    folder = _folder(dataset, 'depth_map_path')
    if folder is None:
        return []
    suffix = dataset.get('depth_map_suffix', '.png')
    return [osp.join(folder, name) for name in _first_files(folder, suffix, _SAMPLED_MAPS)]


def _check_scale(key: str, maps: list[str], factor: float, max_depth: float, checks: Any) -> None:
    import cv2
    import numpy as np
    largest, typical = 0.0, []
    for path in maps:
        depth = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if depth is None:
            continue  # undecodable files are the dataset-contents check's to report
        valid = depth[depth > 0]
        if valid.size:
            largest = max(largest, float(valid.max()) * factor)
            typical.append(float(np.median(valid)) * factor)
    if not typical:
        return
    where = f'{key}: the depth maps (e.g. {maps[0]}) with LoadDepthAnnotation(depth_rescale_factor={factor:g})'
    if largest > 1.05 * max_depth:
        hint = ('they look like millimetres: set depth_rescale_factor=1e-3' if largest * 1e-3 <= max_depth and
                factor == 1.0 else f'set the head\'s max_depth to at least {largest:.1f} or rescale the maps')
        checks.fail(CHECK, f'{where} reach {largest:.4g} m, beyond model.decode_head.max_depth={max_depth:g} (the '
                    f'head predicts at most that): {hint}')
    median = float(np.median(typical))
    if median < max_depth / 1000:
        checks.fail(CHECK, f'{where} are {median:.3g} m typically, under a thousandth of model.decode_head.'
                    f'max_depth={max_depth:g}: depth_rescale_factor is too small for these maps (NYU\'s 16-bit '
                    'PNGs in millimetres need 1e-3)')


def _check_nyu_crop(name: str, dataset: dict, checks: Any) -> None:
    import cv2
    folder = _folder(dataset, 'img_path')
    if folder is None:
        return
    images = _first_files(folder, dataset.get('img_suffix', '.jpg'), 1)
    image = cv2.imread(osp.join(folder, images[0])) if images else None
    if image is None:
        return
    height, width = image.shape[:2]
    resized = any(isinstance(step, dict) and 'Resize' in str(step.get('type'))
                  for step in dataset.get('pipeline') or [])
    if not resized and (height < _NYU_CROP_NEEDS[0] or width < _NYU_CROP_NEEDS[1]):
        checks.fail(CHECK, f"{name}.crop_type='nyu_crop' evaluates rows 45-470 and columns 41-600 (the Eigen crop "
                    f'of NYU\'s 480x640 images) but {osp.join(folder, images[0])} is {height}x{width}: set '
                    f'{name}.crop_type=None for other image sizes')
