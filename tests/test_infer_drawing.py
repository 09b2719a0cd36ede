"""tools/infer.py draws the most confident prediction of an object where a reader sees it (issue 18 §6).

The detector here returns fixed predictions — two classes on one object, as a detector's per-class NMS
leaves them — so the test knows where each box is and reads the colours of the written picture there.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

CLASSES = ('square', 'circle', 'triangle')
# Far-apart colours (RGB), so that a pixel's nearest palette colour is unambiguous after JPEG and alpha.
PALETTE = [(0, 0, 255), (255, 0, 0), (0, 255, 0)]
# Mostly overlapping circle (best) and triangle on one object, a square alone elsewhere, and a box
# under --score-thr.
PREDICTIONS = [  # x1, y1, x2, y2, label, score in mmdet's order: best first
    ((10, 10, 50, 50), 1, 0.9),
    ((14, 14, 54, 54), 2, 0.6),
    ((70, 70, 110, 110), 0, 0.5),
    ((70, 10, 110, 50), 2, 0.1),
]
SIZE = 128


def _register_fixed_detector():
    from mmdet.models.detectors.base import BaseDetector
    from mmdet.registry import MODELS
    from mmengine.structures import InstanceData

    @MODELS.register_module(force=True)
    class FixedPredictionsDetector(BaseDetector):
        """Returns the same boxes for every image, in original-image pixels."""

        def __init__(self, predictions, backbone=None, data_preprocessor=None, init_cfg=None):
            super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
            self.predictions = predictions
            self.weight = torch.nn.Parameter(torch.zeros(1))  # a checkpoint needs something to hold

        def predict(self, batch_inputs, batch_data_samples, rescale=True):
            for sample in batch_data_samples:
                instances = InstanceData()
                instances.bboxes = torch.tensor([p[0] for p in self.predictions], dtype=torch.float32)
                instances.labels = torch.tensor([p[1] for p in self.predictions])
                instances.scores = torch.tensor([p[2] for p in self.predictions])
                sample.pred_instances = instances
            return batch_data_samples

        def loss(self, *args, **kwargs):
            raise NotImplementedError

        def _forward(self, *args, **kwargs):
            raise NotImplementedError

        def extract_feat(self, batch_inputs):
            raise NotImplementedError


CONFIG = f"""
default_scope = 'mmdet'
custom_imports = dict(imports=['pvt_det'], allow_failed_imports=False)
# mmdet's init_detector reads model.backbone (to clear its init_cfg); this detector has none to build.
model = dict(type='FixedPredictionsDetector', predictions={[list(p) for p in PREDICTIONS]!r}, backbone=dict(),
             data_preprocessor=dict(type='DetDataPreprocessor', bgr_to_rgb=True))
# The visualizer's colours come from the test dataset's metainfo first (then the checkpoint's).
test_dataloader = dict(dataset=dict(
    type='CocoDataset', metainfo=dict(classes={CLASSES!r}, palette={PALETTE!r}), pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]))
visualizer = dict(type='DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
"""


@pytest.fixture(scope='module')
def drawing(tmp_path_factory):
    _register_fixed_detector()
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from pvt_det.tools.infer import main
    register_all_modules()
    root = tmp_path_factory.mktemp('infer')
    (root / 'fixed.py').write_text(CONFIG)
    model = MODELS.build(dict(type='FixedPredictionsDetector', predictions=PREDICTIONS))
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=CLASSES))),
               root / 'fixed.pth')
    image = root / 'shapes.jpg'
    cv2.imwrite(str(image), np.full((SIZE, SIZE, 3), 128, np.uint8))
    assert main([str(image), str(root / 'fixed.py'), str(root / 'fixed.pth'), '--out-dir',
                 str(root / 'out'), '--score-thr', '0.3']) == 0
    picture = cv2.cvtColor(cv2.imread(str(root / 'out' / 'shapes_pred.jpg')), cv2.COLOR_BGR2RGB)
    return picture, json.loads((root / 'out' / 'shapes_pred.json').read_text())


def nearest_class(pixel: np.ndarray) -> str:
    """The class whose palette colour is nearest to ``pixel``, or 'background' (the grey of the image)."""
    colours = {name: np.array(colour) for name, colour in zip(CLASSES, PALETTE)}
    colours['background'] = np.array((128, 128, 128))
    return min(colours, key=lambda name: np.abs(colours[name] - pixel.astype(int)).sum())


def test_json_lists_every_prediction_above_the_threshold_best_first(drawing):
    _, result = drawing
    listed = [(tuple(p['bbox']), p['label'], p['score']) for p in result['predictions']]
    expected = [(tuple(float(v) for v in box), label, score)
                for box, label, score in PREDICTIONS if score >= 0.3]
    assert listed == expected
    assert [p['class'] for p in result['predictions']] == ['circle', 'triangle', 'square']


def test_the_best_prediction_of_an_object_is_the_one_drawn(drawing):
    picture, _ = drawing
    # Where the circle's bottom edge (y=50) crosses the triangle's left edge (x=14), the box on top shows.
    assert nearest_class(picture[50, 14]) == 'circle'
    # The circle's outline is drawn all round, in its class colour.
    assert nearest_class(picture[30, 10]) == 'circle' and nearest_class(picture[50, 30]) == 'circle'
    # The triangle on the same object is left out of the drawing: its own edges show the image.
    assert nearest_class(picture[54, 34]) == 'background' and nearest_class(picture[34, 54]) == 'background'
    # One box per object: the square elsewhere, though scoring less than the triangle, is drawn.
    assert nearest_class(picture[90, 70]) == 'square' and nearest_class(picture[110, 90]) == 'square'
    # Under --score-thr: neither listed nor drawn.
    assert nearest_class(picture[30, 110]) == 'background'
