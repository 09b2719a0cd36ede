"""``tools/infer.py`` for panoptic models (Mask2Former with ``test_cfg.panoptic_on``): every segment drawn.

Writes, for IMAGE:
  <stem>_panoptic.jpg       the image under one colour per segment (stuff: its class colour; each thing: a
                            shade of its class colour of its own), white segment outlines, a class label on
                            each segment (things numbered: "circle #2");
  <stem>_panoptic_ids.png   the segment map in COCO panoptic format (id = R + 256 G + 256^2 B, 0 = void),
                            ids as in the JSON;
  <stem>_pred.json          segments_info: id, label, class, isthing, area (pixels), bbox (x, y, w, h).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# mmdet's panoptic maps hold label + instance * INSTANCE_OFFSET per pixel; label == num_classes is void.
from mmdet.evaluation.functional import INSTANCE_OFFSET

from pvt_det.datasets.synthetic_panoptic import require_panopticapi


def segments_of(panoptic_map: np.ndarray, num_classes: int, num_things: int) -> list[dict]:
    """The segments of an mmdet panoptic map, largest first, with COCO-style ids 1, 2, ..."""
    segments = []
    for value in np.unique(panoptic_map):
        label = int(value % INSTANCE_OFFSET)
        if label >= num_classes:  # void
            continue
        mask = panoptic_map == value
        ys, xs = np.nonzero(mask)
        segments.append(dict(value=int(value), label=label, isthing=label < num_things, mask=mask,
                             area=int(mask.sum()),
                             bbox=[int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                   int(ys.max() - ys.min() + 1)]))
    segments.sort(key=lambda segment: -segment['area'])
    for index, segment in enumerate(segments):
        segment['id'] = index + 1
    return segments


def _segment_colours(segments: list[dict], palette: list) -> list[tuple[int, int, int]]:
    """Stuff: its class colour. Things: the class colour, lightened or darkened per instance so that
    touching instances of one class stay apart."""
    colours, seen = [], {}
    for segment in segments:
        base = np.array(palette[segment['label'] % len(palette)], dtype=np.float64)
        if segment['isthing']:
            count = seen.get(segment['label'], 0)
            seen[segment['label']] = count + 1
            shift = (-1) ** count * 0.35 * ((count + 1) // 2)  # 0, -0.35, +0.35, -0.7, ...
            base = base + shift * (255 - base) if shift > 0 else base * (1 + shift)
        colours.append(tuple(int(c) for c in np.clip(base, 0, 255)))
    return colours


def draw_panoptic(image_rgb: np.ndarray, segments: list[dict], classes: tuple[str, ...],
                  palette: list, alpha: float = 0.55) -> np.ndarray:
    """The RGB drawing described in the module doc."""
    import cv2
    drawn = image_rgb.astype(np.float64).copy()
    colours = _segment_colours(segments, palette)
    for segment, colour in zip(segments, colours):
        drawn[segment['mask']] = (1 - alpha) * drawn[segment['mask']] + alpha * np.array(colour)
    drawn = drawn.astype(np.uint8)
    numbers: dict[int, int] = {}
    scale = max(image_rgb.shape[:2]) / 512
    for segment in segments:
        mask = segment['mask'].astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(drawn, contours, -1, (255, 255, 255), max(1, round(scale)))
    for segment in segments:
        name = classes[segment['label']]
        if segment['isthing']:
            numbers[segment['label']] = numbers.get(segment['label'], 0) + 1
            name += f" #{numbers[segment['label']]}"
        # The label sits at the segment's most interior pixel, so it lands inside concave shapes too.
        distance = cv2.distanceTransform(np.pad(segment['mask'].astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(int(distance.argmax()), distance.shape)
        font_scale = max(0.3, 0.5 * scale)
        (width, height), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        x0 = int(np.clip(x - width // 2, 0, max(drawn.shape[1] - width, 0)))
        y0 = int(np.clip(y + height // 2, height, drawn.shape[0] - 1))
        cv2.rectangle(drawn, (x0 - 1, y0 - height - 2), (x0 + width + 1, y0 + 2), (0, 0, 0), -1)
        cv2.putText(drawn, name, (x0, y0), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return drawn


def infer_panoptic(img: np.ndarray, image: str, cfg, config: str, checkpoint: str, out_dir: str,
                   device: str = 'cpu') -> dict[str, Path]:
    """Predict ``img`` (BGR, read from ``image``) and write the three files of the module doc."""
    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.visualization import get_palette

    model = init_detector(cfg, checkpoint, device=device)
    sample = inference_detector(model, img)
    meta = model.dataset_meta
    classes = tuple(meta['classes'])
    num_things = len(meta.get('thing_classes') or ())
    panoptic_map = sample.pred_panoptic_seg.sem_seg[0].cpu().numpy()
    segments = segments_of(panoptic_map, len(classes), num_things)
    palette = get_palette(meta.get('palette') or 'random', len(classes))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(image).stem
    paths = dict(image=out / f'{stem}_panoptic.jpg', segments=out / f'{stem}_panoptic_ids.png',
                 json=out / f'{stem}_pred.json')
    mmcv.imwrite(mmcv.rgb2bgr(draw_panoptic(mmcv.bgr2rgb(img), segments, classes, palette)), str(paths['image']))
    ids = np.zeros(panoptic_map.shape, np.uint32)
    for segment in segments:
        ids[segment['mask']] = segment['id']
    mmcv.imwrite(mmcv.rgb2bgr(require_panopticapi().id2rgb(ids)), str(paths['segments']))
    paths['json'].write_text(json.dumps(dict(
        image=image, config=config, checkpoint=checkpoint,
        segments_info=[dict(id=s['id'], label=s['label'], **{'class': classes[s['label']]},
                            isthing=bool(s['isthing']), area=s['area'], bbox=s['bbox']) for s in segments]),
        indent=1))
    return paths
