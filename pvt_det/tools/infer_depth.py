"""``tools/infer.py`` for depth models (mmseg's ``DepthEstimator``): predict one image, write what a user needs.

Writes to the output folder, per image ``<stem>``:

* ``<stem>_depth.png``: the depth colour-mapped (OpenCV's inferno, near = dark, far = bright) on a fixed scale
  from 0 to the head's ``max_depth``, so colours mean the same metres in every picture;
* ``<stem>_depth_mm.png``: the raw depth as a 16-bit PNG in millimetres (NYU's format);
* ``<stem>_depth.npy``: the raw depth in metres, float32, the input image's height x width;
* ``<stem>_pred.json``: the min / median / max predicted depth in metres and the files above.
"""
from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path

import numpy as np

from pvt_det.models.model_checkpoint import fit_checkpoint_file


def predict_depth(model, image: np.ndarray) -> np.ndarray:
    """Depth in metres (H x W float32) of a BGR image, through the config's test pipeline (minus its annotation
    loading) and the model's ``test_step``."""
    from mmengine.dataset import Compose
    cfg = model.cfg
    pipeline = deepcopy(cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline)
    pipeline = [step for step in pipeline if 'Annotation' not in str(step.get('type'))]
    pipeline[0] = dict(type='LoadImageFromNDArray')
    data = Compose(pipeline)(dict(img=image))
    import torch
    with torch.no_grad():
        sample = model.test_step(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))[0]
    return sample.pred_depth_map.data[0].float().cpu().numpy()


def colour_depth(depth: np.ndarray, max_depth: float) -> np.ndarray:
    """BGR picture of ``depth`` (metres) on the fixed scale 0 .. ``max_depth`` (inferno: near dark, far bright)."""
    import cv2
    scaled = np.clip(depth / max_depth, 0.0, 1.0) * 255.0
    return cv2.applyColorMap(scaled.round().astype(np.uint8), cv2.COLORMAP_INFERNO)


def infer_depth(image: np.ndarray, image_path: str, cfg, config: str, checkpoint: str, out_dir: str,
                device: str = 'cpu') -> dict[str, Path]:
    """Load ``checkpoint`` into the config's depth model (any layout pvt_det converts, e.g. a Hugging Face GLPN
    file), predict ``image`` and write the files of the module docstring. Returns their paths."""
    import cv2
    from mmseg.registry import MODELS
    cfg.model.train_cfg = None
    model = MODELS.build(cfg.model)
    model.cfg = cfg
    # The same conversion and exact-fit check as tools/test.py, on the model that will run (a converted
    # Hugging Face backbone also sets the LayerNorm eps it was trained with).
    report = fit_checkpoint_file(model, checkpoint)
    model.load_state_dict(report.state_dict)
    model.to(device).eval()
    depth = predict_depth(model, image)
    max_depth = float(model.decode_head.max_depth)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(image_path).stem
    paths = dict(image=out / f'{stem}_depth.png', depth_mm=out / f'{stem}_depth_mm.png',
                 depth_npy=out / f'{stem}_depth.npy', json=out / f'{stem}_pred.json')
    cv2.imwrite(str(paths['image']), colour_depth(depth, max_depth))
    cv2.imwrite(str(paths['depth_mm']), np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16))
    np.save(paths['depth_npy'], depth.astype(np.float32))
    summary = dict(min=float(depth.min()), median=float(np.median(depth)), max=float(depth.max()))
    paths['json'].write_text(json.dumps(dict(
        image=image_path, config=config, checkpoint=checkpoint, max_depth=max_depth,
        depth_m={key: round(value, 4) for key, value in summary.items()},
        files={key: path.name for key, path in paths.items() if key != 'json'}), indent=1))
    return paths
