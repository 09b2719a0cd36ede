"""The PVT v2 detection zoo configs (issue 14) train and predict.

Every new config, built with a tiny PVT / PVTv2 arch in place of B2 / Small (the same detector,
neck and head types and settings; only Cascade's and Sparse R-CNN's widest box-head layers
narrower), takes one training step on two
generated 64x64 images with finite losses whose gradients reach the backbone, and predicts. One
config per detector family also trains a few iterations on generated COCO data through
tools/train.py's code and tools/test.py prints its COCO bbox AP (and segm AP for Cascade Mask R-CNN).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

import pvt_det  # noqa: F401  (registers PVT / PVTv2)
from pvt_det.datasets.synthetic import SHAPE_CLASSES, make_coco_dataset

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'

# The smallest backbones that keep the structure: four stages at strides 4-32, spatial-reduction
# attention in stages 1-3 (linear SRA for -Li). Their last three widths differ from each other and
# from B2's, so a neck width copied from the wrong config fails to build.
TINY = dict(embed_dims=[16, 32, 48, 64], num_heads=[1, 2, 3, 4], depths=[1, 1, 1, 1],
            mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1])
ZOO = ['atss_pvt_v2_b2_fpn_3x', 'atss_pvt_v2_b2_li_fpn_3x',
       'cascade_mask_rcnn_pvt_v2_b2_fpn_3x', 'cascade_mask_rcnn_pvt_v2_b2_li_fpn_3x',
       'deformable_detr_pvt_v2_b2', 'detr_pvt_small_50e',
       'gfl_pvt_v2_b2_fpn_3x', 'gfl_pvt_v2_b2_li_fpn_3x', 'mask_rcnn_pvt_v2_b2_li_fpn_3x',
       'retinanet_pvt_small_fpn_640',
       'sparse_rcnn_pvt_v2_b2_fpn_3x', 'sparse_rcnn_pvt_v2_b2_li_fpn_3x']


def tiny_model_cfg(name: str, num_classes: int = 80) -> Config:
    """The config's model with the tiny arch: the neck reads the tiny widths of the stages the
    config's backbone returns; everything after the neck is the config's."""
    cfg = Config.fromfile(str(CONFIGS / f'{name}.py'))
    backbone = cfg.model.backbone
    arch = dict(TINY, linear=True) if backbone.arch == 'b2_li' else dict(TINY)
    widths = {64: 0, 128: 1, 320: 2, 512: 3}  # B2 / Small widths -> stage
    stages = [widths[c] for c in cfg.model.neck.in_channels]
    assert stages == list(backbone.get('out_indices', (0, 1, 2, 3))), stages
    backbone.update(arch=arch, init_cfg=None, drop_path_rate=0.0)
    cfg.model.neck.in_channels = [TINY['embed_dims'][i] for i in stages]
    _set_num_classes(cfg.model, num_classes)
    _fewer_proposals(cfg.model)
    # The widest box-head layers narrower (types and everything else as shipped): Cascade's and
    # Sparse R-CNN's 50-80M-parameter heads would dominate the CPU time and make every checkpoint
    # the tools write about 1 GB. The full models are built by tests/test_zoo_configs.py.
    heads = cfg.model.get('roi_head', {}).get('bbox_head', [])
    for head in heads if isinstance(heads, list) else []:  # Cascade's / Sparse R-CNN's stages
        if head.type == 'ConvFCBBoxHead':  # Cascade's 4conv1fc
            head.fc_out_channels = 64
        elif head.type == 'DIIHead':  # Sparse R-CNN's
            head.feedforward_channels = 64
            head.dynamic_conv_cfg.feat_channels = 8
    return cfg


def _fewer_proposals(model) -> None:
    """Fewer proposals, sampled RoIs and queries than on COCO (64 px images, CPU time); the layers
    are the config's."""
    train_cfg, test_cfg = model.get('train_cfg') or {}, model.get('test_cfg') or {}
    if 'rpn_proposal' in train_cfg:  # two-stage with an RPN (Cascade / Mask R-CNN)
        train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
        test_cfg.rpn.update(nms_pre=200, max_per_img=100)
        test_cfg.rcnn.max_per_img = 20
        stages = train_cfg.rcnn if isinstance(train_cfg.rcnn, list) else [train_cfg.rcnn]
        for stage in stages:
            stage.sampler.num = 64
    if model.type == 'SparseRCNN':
        model.rpn_head.num_proposals = test_cfg.rcnn.max_per_img = 20
    if model.type in ('DETR', 'DeformableDETR'):
        model.num_queries = 20
        test_cfg.max_per_img = 20


def _set_num_classes(node, num_classes: int) -> None:
    """``num_classes`` everywhere in the model; test-time score thresholds to 0, so that a model a
    step old (scores below the usual 0.05) still returns boxes to check."""
    if isinstance(node, dict):
        if 'num_classes' in node:
            node['num_classes'] = num_classes
        if 'score_thr' in node:
            node['score_thr'] = 0.0
        for value in node.values():
            _set_num_classes(value, num_classes)
    elif isinstance(node, list):
        for value in node:
            _set_num_classes(value, num_classes)


def _batch(with_masks: bool, size: int = 64):
    """Two images with two boxes each (and their masks), as a data loader yields them."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.from_numpy(rng.integers(0, 255, (3, size, size), dtype=np.uint8)))
        boxes = np.array([[4, 6, 30, 40], [20, 24, 60, 58]], dtype=np.float32)
        instances = InstanceData(bboxes=torch.from_numpy(boxes), labels=torch.tensor([0, 2]))
        if with_masks:
            masks = np.zeros((2, size, size), dtype=np.uint8)
            for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
                masks[i, y0:y1, x0:x1] = 1
            instances.masks = BitmapMasks(masks, size, size)
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             scale_factor=(1.0, 1.0), img_id=0))
        sample.gt_instances = instances
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('name', ZOO)
def test_config_trains_one_step_and_predicts(name):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    cfg = tiny_model_cfg(name)
    # SyncBN (Cascade's box heads) outside a process group: plain BN, as tools/train.py does.
    from pvt_det.tools.run_options import adapt_to_machine
    adapt_to_machine(cfg)
    model = MODELS.build(cfg.model)
    model.init_weights()  # as the runner does: the heads' own initialisation (biases, priors)
    assert type(model.backbone).__name__ == cfg.model.backbone.type
    model.train()
    data = _batch(with_masks='roi_head' in cfg.model and 'mask_head' in cfg.model.roi_head)
    losses = model(**model.data_preprocessor(data, training=True), mode='loss')
    loss, log = model.parse_losses(losses)
    assert all(math.isfinite(v.item()) for v in log.values()), log
    loss.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0, 'no gradient reached the backbone'

    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(data, training=False), mode='predict')
    assert len(results) == 2
    for result in results:
        boxes = result.pred_instances.bboxes
        assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 0
        assert torch.isfinite(boxes).all() and (result.pred_instances.scores >= 0).all()


# ------------------------------------------------------------------------ tools/train.py + test.py
ITERS = 3
FAMILIES = ['atss_pvt_v2_b2_fpn_3x', 'cascade_mask_rcnn_pvt_v2_b2_fpn_3x',
            'deformable_detr_pvt_v2_b2', 'detr_pvt_small_50e', 'gfl_pvt_v2_b2_fpn_3x',
            'sparse_rcnn_pvt_v2_b2_fpn_3x']
COCO_LAYOUT = dict(train_ann='annotations/instances_train2017.json', train_img='train2017/',
                   val_ann='annotations/instances_val2017.json', val_img='val2017/')


@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('zoo_coco')
    make_coco_dataset(root, num_train=2, num_val=2, image_size=(64, 64), seed=5)
    return root


def _user_config(tmp_path: Path, name: str, coco: Path) -> Path:
    """A user's config on generated COCO data (tests/test_tools.py's template: 64 px images, a few
    iterations, no warm-up): the shipped config with the tiny backbone, its own classes, scores
    kept down to 0 and fewer proposals (:func:`tiny_model_cfg`)."""
    from test_tools import USER_CONFIG
    model = tiny_model_cfg(name, num_classes=len(SHAPE_CLASSES)).model.to_dict()
    parts = dict(neck=dict(in_channels=model['neck']['in_channels']))
    for key in ('bbox_head', 'roi_head', 'rpn_head', 'train_cfg', 'test_cfg', 'num_queries'):
        if key in model:
            parts[key] = model[key]
    text = USER_CONFIG.format(
        base=CONFIGS / f'{name}.py', data_root=coco, classes=SHAPE_CLASSES,
        masks=name.startswith('cascade'), iters=ITERS,
        head=', '.join(f'{key}={value!r}' for key, value in parts.items()), **COCO_LAYOUT)
    # The template keeps the shipped arch; the tiny one, and a visualizer of this run's own (one
    # per name per process).
    arch = dict(model['backbone']['arch'], _delete_=True)  # a dict where the shipped one is a name
    text += (f"model['backbone'].update(arch={arch!r})\n"
             f"visualizer = dict(name={'vis_' + name!r})\n")
    config = tmp_path / f'my_{name}.py'
    config.write_text(text)
    return config


@pytest.mark.slow
@pytest.mark.parametrize('name', FAMILIES)
def test_family_trains_and_tests_through_the_tools(tmp_path, coco, name, capsys):
    from pvt_det.tools import test as test_tool, train as train_tool
    from test_tools import logged_losses, printed_metrics
    config = _user_config(tmp_path, name, coco)
    work_dir = tmp_path / 'work'
    assert train_tool.main([str(config), '--work-dir', str(work_dir)]) == 0, capsys.readouterr().err
    losses = logged_losses(work_dir)
    assert len(losses) == ITERS and all(map(math.isfinite, losses)), losses
    checkpoint = work_dir / f'iter_{ITERS}.pth'
    assert checkpoint.is_file()
    capsys.readouterr()
    assert test_tool.main([str(config), str(checkpoint), '--work-dir', str(work_dir)]) == 0
    printed = capsys.readouterr().out
    metrics = printed_metrics(printed)
    assert 0.0 <= metrics['bbox_mAP'] <= 1.0, printed[-2000:]
    if name.startswith('cascade'):
        assert 0.0 <= metrics['segm_mAP'] <= 1.0, printed[-2000:]
