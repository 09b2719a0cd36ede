"""Predict one image and draw the result with mmdet's / mmseg's visualizer.

    python tools/infer.py IMAGE CONFIG CHECKPOINT --out-dir DIR [--score-thr 0.3] [--device cpu]

Writes DIR/<image>_pred.jpg (drawn: one box per object, its most confident prediction, on top) and
DIR/<image>_pred.json (every box scoring at least --score-thr, best first, with scores, classes and masks
as COCO RLE; for segmentation, the classes present and DIR/<image>_pred.png, the label map).
Depth models (DepthEstimator, e.g. configs/glpn_*): DIR/<image>_depth.png (colour-mapped), the raw depth as
DIR/<image>_depth_mm.png (16-bit, millimetres) and DIR/<image>_depth.npy (metres), and DIR/<image>_pred.json.
Panoptic models (Mask2Former, configs/mask2former_*_panoptic.py): DIR/<image>_panoptic.jpg (stuff and things,
a colour and a label per segment), DIR/<image>_panoptic_ids.png (COCO panoptic PNG) and DIR/<image>_pred.json.
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
from pathlib import Path

import torch

from pvt_det.cli import ToolError, cli_main
from pvt_det.models.model_checkpoint import fit_checkpoint_file
from pvt_det.tools.args import add_cfg_options
from pvt_det.config.loading import load_config, register_scope
from pvt_det.tools.run_options import adapt_to_machine
from pvt_det.config.preflight import check_checkpoint


# Class-agnostic overlap above which the drawing shows only the more confident of two boxes.
DRAW_IOU_THR = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw and save the predictions for one image')
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--out-dir', required=True, help='directory for the drawing and the JSON')
    parser.add_argument('--device', default='cpu', help='cpu or cuda:0')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: keep boxes scoring at least this')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def infer(image: str, config: str, checkpoint: str, out_dir: str, device: str = 'cpu',
          score_thr: float = 0.3, cfg_options: dict | None = None) -> dict[str, Path]:
    """Predict one image; write ``<stem>_pred.jpg`` (drawn) and ``<stem>_pred.json`` to ``out_dir``.

    Detection JSON: one entry per box with ``label``, ``class``, ``score``, ``bbox`` (x1, y1, x2,
    y2 in pixels) and, for Mask R-CNN, ``mask`` as COCO RLE. Segmentation JSON: the classes
    present with their pixel fraction; the label map is also saved as ``<stem>_pred.png``.
    """
    import mmcv
    if not osp.isfile(image):
        raise ToolError(f'image not found: {image}')
    check_checkpoint(checkpoint)
    cfg = load_config(config, cfg_options)
    task = register_scope(cfg)
    adapt_to_machine(cfg)
    if 'backbone' in cfg.model:
        cfg.model.backbone.init_cfg = None  # the checkpoint holds the trained backbone
    img = mmcv.imread(image)
    if img is None:
        raise ToolError(f'cannot read {image} as an image')
    if cfg.model.get('type') == 'DepthEstimator':  # colour-mapped depth + raw depth (pvt_det.tools.infer_depth)
        from pvt_det.tools.infer_depth import infer_depth
        return infer_depth(img, image, cfg, config, checkpoint, out_dir, device)
    # mmdet's init_detector / mmseg's init_model load without checking: refuse a misfit before they run.
    fit_checkpoint_file(_model_skeleton(cfg, task), checkpoint)
    if task == 'det' and (cfg.model.get('test_cfg') or {}).get('panoptic_on'):  # pvt_det.tools.infer_panoptic
        from pvt_det.tools.infer_panoptic import infer_panoptic
        return infer_panoptic(img, image, cfg, config, checkpoint, out_dir, device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(image).stem
    paths = dict(image=out / f'{stem}_pred.jpg', json=out / f'{stem}_pred.json')
    if task == 'det':
        from mmdet.apis import inference_detector, init_detector
        model = init_detector(cfg, checkpoint, device=device)
        sample = inference_detector(model, img)
        predictions = _detections_to_json(sample, model.dataset_meta['classes'], score_thr)
        visualizer_cfg = dict(cfg.visualizer, name='pvt_det_infer')
        drawn = sample.clone()  # the JSON keeps every prediction; the drawing one per object
        drawn.pred_instances = instances_to_draw(sample.pred_instances, score_thr)
    else:
        from mmseg.apis import inference_model, init_model
        model = init_model(cfg, checkpoint, device=device)
        sample = inference_model(model, img)
        label_map = sample.pred_sem_seg.data[0].cpu().numpy().astype('uint8')
        paths['label_map'] = out / f'{stem}_pred.png'
        mmcv.imwrite(label_map, str(paths['label_map']))
        predictions = _segmentation_to_json(label_map, model.dataset_meta['classes'])
        visualizer_cfg = dict(cfg.visualizer, name='pvt_det_infer', save_dir=None)
        drawn = sample
    from mmengine.registry import VISUALIZERS
    visualizer_cfg.pop('vis_backends', None)  # draw to a file only, no extra backend dirs
    visualizer = VISUALIZERS.build(visualizer_cfg)
    visualizer.dataset_meta = model.dataset_meta
    draw_args = dict(pred_score_thr=score_thr) if task == 'det' else {}
    visualizer.add_datasample(stem, mmcv.bgr2rgb(img), drawn, draw_gt=False, show=False,
                              out_file=str(paths['image']), **draw_args)
    paths['json'].write_text(json.dumps(dict(image=image, config=config, checkpoint=checkpoint,
                                             predictions=predictions), indent=1))
    return paths


def _model_skeleton(cfg, task: str) -> torch.nn.Module:
    """The config's model with its parameter names and shapes, built on the meta device (no memory, no init)."""
    if task == 'det':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    with torch.device('meta'):
        return MODELS.build(cfg.model)


def instances_to_draw(instances, score_thr: float, iou_thr: float = DRAW_IOU_THR):
    """The predictions a drawing shows: at least ``score_thr``, one per object, the most confident on top.

    A detector keeps a box per class on an object (its NMS is per class), so a circle scoring 0.9 and a
    triangle scoring 0.6 can sit on the same shape; drawn in mmdet's order (best first) the triangle's
    outline and label land over the circle's. Boxes overlapping a better one of any class by more than
    ``iou_thr`` are left out of the drawing, and the rest are drawn in increasing score order.
    """
    import torch
    from mmcv.ops import nms
    instances = instances[instances.scores >= score_thr]
    if len(instances) == 0:
        return instances
    _, best_first = nms(instances.bboxes.float(), instances.scores.float(), iou_thr)
    return instances[torch.flip(best_first, [0])]


def _detections_to_json(sample, classes: tuple[str, ...], score_thr: float) -> list[dict]:
    instances = sample.pred_instances
    keep = instances.scores >= score_thr
    instances = instances[keep]
    instances = instances[instances.scores.argsort(descending=True)]  # best first, whatever the model did
    masks = instances.get('masks')
    results = []
    for index in range(len(instances)):
        label = int(instances.labels[index])
        entry = dict(label=label, **{'class': classes[label]},
                     score=round(float(instances.scores[index]), 4),
                     bbox=[round(float(v), 2) for v in instances.bboxes[index]])
        if masks is not None:
            from pycocotools import mask as mask_utils
            import numpy as np
            rle = mask_utils.encode(np.asfortranarray(masks[index].cpu().numpy().astype('uint8')))
            entry['mask'] = dict(size=rle['size'], counts=rle['counts'].decode('ascii'))
        results.append(entry)
    return results


def _segmentation_to_json(label_map, classes: tuple[str, ...]) -> list[dict]:
    import numpy as np
    labels, counts = np.unique(label_map, return_counts=True)
    order = np.argsort(-counts)
    return [dict(label=int(labels[i]), **{'class': classes[int(labels[i])]},
                 fraction=round(float(counts[i]) / label_map.size, 4)) for i in order]


@cli_main
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    paths = infer(args.image, args.config, args.checkpoint, args.out_dir,
                  device=args.device, score_thr=args.score_thr, cfg_options=args.cfg_options)
    for kind, path in paths.items():
        print(f'{kind}: {path}')


if __name__ == '__main__':
    sys.exit(main())
