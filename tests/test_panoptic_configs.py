"""Mask2Former-PVTv2 configs: mmdet's Swin recipe value for value outside what follows the backbone; each
config builds, trains a step (finite loss, gradients in the backbone) and predicts."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from pvt_det.config.loading import load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
SWIN = 'mask2former/mask2former_swin-{}_8xb2-lsj-50e_coco{}.py'  # under mmdet's packaged configs
# (ours, mmdet's Swin twin of the same recipe, our arch)
TWINS = [
    ('mask2former_pvt_v2_b2_coco_panoptic.py', SWIN.format('t-p4-w7-224', '-panoptic'), 'b2'),
    ('mask2former_pvt_v2_b5_coco_panoptic.py', SWIN.format('b-p4-w12-384', '-panoptic'), 'b5'),
    ('mask2former_pvt_v2_b2_coco_instance.py', SWIN.format('t-p4-w7-224', ''), 'b2'),
]
# Top-level names that only carry the backbone swap (ours: those of our two base files) or Swin's backbone.
BACKBONE_NAMES = ('pretrained', 'depths', 'custom_keys')
BASE_FILES = ('pvt_backbones.py', 'mask2former_pvt_v2.py')
THINGS, STUFF = ('square', 'circle', 'triangle'), ('sky', 'ground')


def _load(name: str):
    import mmdet
    mmdet_configs = Path(mmdet.__file__).parent / '.mim' / 'configs'
    return load_config(mmdet_configs / name if name.startswith('mask2former/') else REPO_ROOT / 'configs' / name)


def _base_names() -> set[str]:
    from mmengine.config import Config
    return {name for file in BASE_FILES
            for name in Config.fromfile(REPO_ROOT / 'configs' / '_base_' / 'models' / file).keys()}


def _without_backbone(cfg) -> dict:
    recipe = copy.deepcopy(cfg.to_dict())
    for name in set(BACKBONE_NAMES) | _base_names():
        recipe.pop(name, None)
    recipe['model'].pop('backbone')
    recipe['model']['panoptic_head'].pop('in_channels')
    recipe['optim_wrapper']['paramwise_cfg'].pop('custom_keys')
    return _unscoped(recipe)


def _unscoped(node):
    # mmengine tags what a `mmdet::` base defines with _scope_='mmdet'; the values are the same.
    if isinstance(node, dict):
        return {key: _unscoped(value) for key, value in node.items() if key != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(_unscoped(value) for value in node)
    return node


@pytest.fixture(scope='module')
def configs():
    return {name: (_load(name), _load(swin)) for name, swin, _ in TWINS}


@pytest.mark.parametrize('name,swin,arch', TWINS)
def test_recipe_is_mmdet_swin_recipe_outside_the_backbone(configs, name, swin, arch):
    ours, theirs = configs[name]
    assert _without_backbone(ours) == _without_backbone(theirs)
    backbone = ours.model.backbone
    assert (backbone.type, backbone.arch, backbone.out_indices) == ('PVTv2', arch, (0, 1, 2, 3))
    assert backbone.init_cfg.checkpoint.endswith(f'pvt_v2_{arch}.pth') and ours.pretrained.endswith(
        f'pvt_v2_{arch}.pth')
    # The keys of the head and the backbone-wide 0.1x lr are the recipe's, as they are.
    ours_keys = ours.optim_wrapper.paramwise_cfg.custom_keys
    theirs_keys = theirs.optim_wrapper.paramwise_cfg.custom_keys
    for key in ('backbone', 'query_embed', 'query_feat', 'level_embed'):
        assert ours_keys[key] == theirs_keys[key]


@pytest.mark.parametrize('arch,name', [('b2', TWINS[0][0]), ('b5', TWINS[1][0])])
def test_head_and_optimizer_follow_the_backbone(configs, arch, name):
    """in_channels = the backbone's widths; every backbone norm at 0.1x lr, no decay (as Swin's keys do for
    Swin); every other backbone weight at 0.1x lr with the recipe's decay; the head at the full lr."""
    from mmengine.optim import build_optim_wrapper
    from mmdet.registry import MODELS
    ours = configs[name][0]
    backbone = MODELS.build(dict(ours.model.backbone, init_cfg=None))
    assert list(ours.model.panoptic_head.in_channels) == list(backbone.out_channels)
    model = torch.nn.Module()
    model.backbone = backbone
    model.query_embed = torch.nn.Embedding(2, 4)
    model.head = torch.nn.Linear(4, 4)
    wrapper = build_optim_wrapper(model, copy.deepcopy(ours.optim_wrapper.to_dict()))
    base_lr, base_wd = ours.optim_wrapper.optimizer.lr, ours.optim_wrapper.optimizer.weight_decay
    settings = {}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            settings[id(param)] = (group['lr'], group['weight_decay'])
    norms = {f'backbone.{n}.{p}' for n, m in backbone.named_modules() if isinstance(m, torch.nn.LayerNorm)
             for p in ('weight', 'bias')}
    assert len(norms) > 50
    for param_name, param in model.named_parameters():
        lr, wd = settings[id(param)]
        if param_name in norms:
            assert (lr, wd) == pytest.approx((0.1 * base_lr, 0.0)), param_name
        elif param_name.startswith('backbone.'):
            assert lr == pytest.approx(0.1 * base_lr), param_name
            assert wd in (pytest.approx(base_wd), 0.0), param_name
        elif param_name.startswith('query_embed'):
            assert (lr, wd) == pytest.approx((base_lr, 0.0))
        else:
            assert lr == pytest.approx(base_lr)


@pytest.fixture(scope='module')
def panoptic_data(tmp_path_factory):
    from pvt_det.datasets.synthetic_panoptic import make_coco_panoptic_dataset
    root = tmp_path_factory.mktemp('panoptic_data')
    make_coco_panoptic_dataset(root, num_train=2, num_val=1, image_size=(64, 64), max_objects=2)
    return root


def _small_model_cfg(cfg, panoptic: bool):
    """The config's model for the generated dataset's classes at 64 px, as a user's config would set it:
    class counts, batch padding and the number of points sampled per mask (the recipe's 12544 is for
    1024 px crops; a 64 px mask has 256 points at the head's 1/4 scale)."""
    model = copy.deepcopy(cfg.model)
    model.backbone.init_cfg = None
    num_stuff = len(STUFF) if panoptic else 0
    for head in (model.panoptic_head, model.panoptic_fusion_head):
        head.num_things_classes, head.num_stuff_classes = len(THINGS), num_stuff
    model.panoptic_head.loss_cls.class_weight = [1.0] * (len(THINGS) + num_stuff) + [0.1]
    model.data_preprocessor.batch_augments[0].size = (64, 64)
    model.train_cfg.num_points = 256
    return model


def _batch(root: Path, panoptic: bool):
    from mmengine.dataset import pseudo_collate
    from mmdet.registry import DATASETS
    load = (dict(type='LoadPanopticAnnotations') if panoptic
            else dict(type='LoadAnnotations', with_bbox=True, with_mask=True))
    dataset = DATASETS.build(dict(
        type='CocoPanopticDataset' if panoptic else 'CocoDataset', data_root=str(root),
        ann_file=f'annotations/{"panoptic" if panoptic else "instances"}_train2017.json',
        data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
        metainfo=dict(classes=THINGS + STUFF, thing_classes=THINGS, stuff_classes=STUFF) if panoptic
        else dict(classes=THINGS),
        pipeline=[dict(type='LoadImageFromFile', to_float32=True), load, dict(type='PackDetInputs')]))
    return pseudo_collate([dataset[0], dataset[1]])


@pytest.mark.slow
@pytest.mark.parametrize('name', [twin[0] for twin in TWINS])
def test_config_trains_a_step_and_predicts(configs, panoptic_data, name):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    panoptic = name.endswith('panoptic.py')
    torch.manual_seed(0)
    model = MODELS.build(_small_model_cfg(configs[name][0], panoptic))
    model.init_weights()
    batch = _batch(panoptic_data, panoptic)
    model.train()
    loss, _ = model.parse_losses(model(**model.data_preprocessor(batch, True), mode='loss'))
    assert math.isfinite(loss.item()) and loss.item() > 0
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith('backbone.')]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0

    model.eval()
    with torch.no_grad():
        samples = model(**model.data_preprocessor(batch, False), mode='predict')
    for sample in samples:
        if panoptic:
            segment_map = sample.pred_panoptic_seg.sem_seg
            assert tuple(segment_map.shape) == (1, 64, 64)
            labels = segment_map % 1000  # mmdet's INSTANCE_OFFSET; label == num_classes is void
            assert int(labels.max()) <= len(THINGS + STUFF)
        else:
            assert tuple(sample.pred_instances.masks.shape[1:]) == (64, 64)
