"""A small generated depth dataset in the NYU Depth V2 layout mmseg's ``NYUDataset`` reads, for tests and demos.

NYU Depth V2 cannot be downloaded here. The layout is mmseg's (``tools/dataset_converters/nyu.py``): the split is
the folder, ``images/{train,test}/<scene>_<n>.jpg`` with ``annotations/{train,test}/<scene>_<n>.png`` beside it,
16-bit PNGs in millimetres (``LoadDepthAnnotation(depth_rescale_factor=1e-3)`` gives metres). The scene name
before the number is one of ``NYUDataset``'s classes, so its ``category_id`` is set as for the real files.

Depth can be read off the image, so a short training learns it: a floor/wall backdrop whose depth falls from the
top row to the bottom one (as a camera looking at a room sees it) and 1-3 flat boxes nearer than the backdrop,
each shaded brighter the nearer it is; noise on top keeps it from being a lookup table.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

DEPTH_SCALE = 1000  # PNG value per metre (NYU: millimetres)
SPLITS = ('train', 'test')
_SCENES = ('bedroom', 'kitchen', 'living_room', 'bathroom', 'office')
_MIN_SIDE = 32


def _draw_depth_scene(rng: np.random.Generator, height: int, width: int,
                      max_depth: float) -> tuple[np.ndarray, np.ndarray]:
    """One BGR image and its depth in metres (float32, all valid, within (0.5, 0.8 * max_depth])."""
    far, near = 0.8 * max_depth * rng.uniform(0.8, 1.0), 0.1 * max_depth * rng.uniform(1.0, 1.5)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    depth = np.repeat(far + (near - far) * rows, width, axis=1)  # far at the top, near at the bottom
    tint = rng.uniform(0.6, 1.0, size=3)
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        box_h, box_w = (int(rng.uniform(0.2, 0.45) * side) for side in (height, width))
        y0, x0 = int(rng.integers(0, height - box_h)), int(rng.integers(0, width - box_w))
        objects.append((y0, x0, box_h, box_w, float(rng.uniform(near, 0.6 * far)), rng.uniform(0.3, 1.0, 3)))
    for y0, x0, box_h, box_w, box_depth, _ in objects:
        depth[y0:y0 + box_h, x0:x0 + box_w] = box_depth  # later boxes are drawn over earlier ones
    # brightness falls with depth: nearer is brighter, in every colour
    shade = 1.0 - 0.8 * (depth / max_depth)
    colour = np.broadcast_to(tint, (height, width, 3)).copy()
    for y0, x0, box_h, box_w, _, box_tint in objects:
        colour[y0:y0 + box_h, x0:x0 + box_w] = box_tint
    image = 255.0 * shade[..., None] * colour + rng.normal(0.0, 6.0, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8), depth.astype(np.float32)


def make_nyu_depth_dataset(root: str | Path, num_train: int = 16, num_test: int = 8,
                           image_size: tuple[int, int] = (96, 128), max_depth: float = 10.0,
                           seed: int = 0) -> dict[str, Path]:
    """Write a NYU-layout depth dataset under ``root`` (see the module docstring).

    ``image_size`` is (height, width); depths lie within ``(0, 0.8 * max_depth]`` metres. Returns the four
    folders (``train_images``, ``train_annotations``, ``test_images``, ``test_annotations``).
    """
    if min(image_size) < _MIN_SIDE:
        raise ValueError(f'image_size={image_size} is too small; use at least {_MIN_SIDE} pixels per side')
    if not 0 < max_depth <= 65.535:
        raise ValueError(f'max_depth={max_depth}: 16-bit PNGs in millimetres hold 0 < depth <= 65.535 m')
    root = Path(root)
    rng = np.random.default_rng(seed)
    height, width = image_size
    paths: dict[str, Path] = {}
    for split, count in zip(SPLITS, (num_train, num_test)):
        image_dir, depth_dir = root / 'images' / split, root / 'annotations' / split
        image_dir.mkdir(parents=True, exist_ok=True)
        depth_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, depth = _draw_depth_scene(rng, height, width, max_depth)
            stem = f'{_SCENES[index % len(_SCENES)]}_{index + 1:04d}'
            cv2.imwrite(str(image_dir / f'{stem}.jpg'), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(depth_dir / f'{stem}.png'), np.round(depth * DEPTH_SCALE).astype(np.uint16))
        paths[f'{split}_images'], paths[f'{split}_annotations'] = image_dir, depth_dir
    return paths


def read_depth_png(path: str | Path) -> np.ndarray:
    """A 16-bit depth PNG in metres (float32); 0 marks no measurement, as in NYU."""
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None or depth.dtype != np.uint16:
        raise ValueError(f'{path} is not a 16-bit depth PNG')
    return depth.astype(np.float32) / DEPTH_SCALE


def training_mean_metrics(root: str | Path) -> dict[str, float]:
    """mmseg's depth metrics (``DepthMetric``: d1 ... silog) of predicting, for every test pixel, the mean depth of
    the training set: the level a depth model must beat to have learned anything from the image."""
    import torch
    from mmseg.evaluation.metrics import DepthMetric
    root = Path(root)
    train = [read_depth_png(path) for path in sorted((root / 'annotations' / 'train').glob('*.png'))]
    if not train:
        raise ValueError(f'no training depth maps in {root / "annotations" / "train"}')
    mean = float(np.mean([depth[depth > 0].mean() for depth in train]))
    results = []
    for path in sorted((root / 'annotations' / 'test').glob('*.png')):
        gt = torch.from_numpy(read_depth_png(path))
        valid = gt > 0
        results.append((gt[valid], torch.full_like(gt[valid], mean)))
    metric = DepthMetric()
    return {key: value for key, value in metric.compute_metrics(results).items()}
