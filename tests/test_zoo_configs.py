"""The PVT v2 detection zoo beyond RetinaNet / Mask R-CNN 1x (issue 14): each config against its
official counterpart in ../shared/reference/ (whai362/PVT, mmdet 2.x), value for value, and the
parameter counts of the built models.

The official configs load with mmengine (plain dicts). Both sides are reduced to the same
``recipe``: optimizer (type, lr, weight decay, betas, per-key multipliers), gradient clipping,
epochs, lr steps, warm-up, images per GPU, the train / test augmentation (scales, crop, flip), the
padding, the backbone (arch, stages, stochastic depth, ImageNet checkpoint), the neck, and the
heads with their assigners / samplers / test settings, translated where
mmdet 3.x renamed a key (HungarianAssigner's costs, DETR's transformer outside the head).
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from mmengine.config import Config

import pvt_det  # noqa: F401  (registers PVT / PVTv2)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'
OFFICIAL = REPO.parent / 'shared' / 'reference' / 'whai362_pvt_v2' / 'detection' / 'configs'

# ours -> the official config it translates.
PAIRS = {
    'cascade_mask_rcnn_pvt_v2_b2_fpn_3x': 'cascade_mask_rcnn_pvt_v2_b2_fpn_3x_mstrain_fp16',
    'cascade_mask_rcnn_pvt_v2_b2_li_fpn_3x': 'cascade_mask_rcnn_pvt_v2_b2_li_fpn_3x_mstrain_fp16',
    'atss_pvt_v2_b2_fpn_3x': 'atss_pvt_v2_b2_fpn_3x_mstrain_fp16',
    'atss_pvt_v2_b2_li_fpn_3x': 'atss_pvt_v2_b2_li_fpn_3x_mstrain_fp16',
    'gfl_pvt_v2_b2_fpn_3x': 'gfl_pvt_v2_b2_fpn_3x_mstrain_fp16',
    'gfl_pvt_v2_b2_li_fpn_3x': 'gfl_pvt_v2_b2_li_fpn_3x_mstrain_fp16',
    'sparse_rcnn_pvt_v2_b2_fpn_3x':
        'sparse_rcnn_pvt_v2_b2_fpn_300_proposals_crop_mstrain_480-800_3x_coco',
    'sparse_rcnn_pvt_v2_b2_li_fpn_3x':
        'sparse_rcnn_pvt_v2_b2_li_fpn_300_proposals_crop_mstrain_480-800_3x_coco',
    'detr_pvt_small_50e': 'detr_pvt_s_8x2_50ep_coco',
    'retinanet_pvt_small_fpn_640': 'retinanet_pvt_s_fpn_1x_coco_640',
    'mask_rcnn_pvt_v2_b2_fpn_3x': 'mask_rcnn_pvt_v2_b2_fpn_3x_mstrain',
    'mask_rcnn_pvt_v2_b2_li_fpn_3x': 'mask_rcnn_pvt_v2_b2_li_fpn_3x_mstrain',
    'retinanet_pvt_large_fpn': 'retinanet_pvt_l_fpn_1x_coco',
}
NEW_CONFIGS = sorted(set(PAIRS) - {'mask_rcnn_pvt_v2_b2_fpn_3x', 'retinanet_pvt_large_fpn'}
                     | {'deformable_detr_pvt_v2_b2'})

# Millions of parameters with 80 COCO classes, measured by building each config here; the PVT v2
# paper's table of these detectors rounds them to 33M (ATSS, GFL), 83M (Cascade), 107M (Sparse
# R-CNN). A change is an architecture change. docs/model_zoo.md lists the same counts.
PARAMS_M = {
    'atss_pvt_v2_b2_fpn_3x': 32.965, 'atss_pvt_v2_b2_li_fpn_3x': 30.156,
    'cascade_mask_rcnn_pvt_v2_b2_fpn_3x': 82.852, 'cascade_mask_rcnn_pvt_v2_b2_li_fpn_3x': 80.043,
    'deformable_detr_pvt_v2_b2': 37.250, 'detr_pvt_small_50e': 41.645,
    'gfl_pvt_v2_b2_fpn_3x': 33.111, 'gfl_pvt_v2_b2_li_fpn_3x': 30.301,
    'mask_rcnn_pvt_v2_b2_li_fpn_3x': 42.208, 'retinanet_pvt_small_fpn_640': 34.221,
    'sparse_rcnn_pvt_v2_b2_fpn_3x': 106.964, 'sparse_rcnn_pvt_v2_b2_li_fpn_3x': 104.154,
}

# Keys mmdet 3.x dropped (the proposal count is max_per_img alone) or that only name the
# mmdet 2.x code path; they carry no recipe value.
MMDET2_ONLY = {'nms_across_levels', 'nms_post', 'pretrained', 'style'}


def load_ours(name: str) -> Config:
    return Config.fromfile(str(CONFIGS / f'{name}.py'))


def load_official(name: str) -> Config:
    return Config.fromfile(str(OFFICIAL / f'{name}.py'))


# ------------------------------------------------------------------------------------ augmentation
def _scales(scale: Any) -> list[tuple[int, int]]:
    """mmdet's (long, short) edge pairs, sorted: (1333, 800) and (800, 1333) mean the same."""
    scales = [scale] if isinstance(scale[0], int) else scale
    return sorted((max(s), min(s)) for s in scales)


def _steps(pipeline: list, train: bool, official: bool) -> list:
    """The augmentation of a pipeline as (what, values) steps, in order: annotations loaded (train),
    resizes, flips, crops, random choices; the mmdet 2.x names when ``official``."""
    steps = []
    for t in pipeline:
        kind = t['type']
        if kind == 'LoadAnnotations' and train:
            steps.append(('load', t.get('with_bbox', True), t.get('with_mask', False)))
        elif kind in ('Resize', 'RandomChoiceResize') and (not official or 'img_scale' in t):
            scale = t['img_scale'] if official else t.get('scale', t.get('scales'))
            steps.append(('resize', _scales(scale), t.get('keep_ratio', official)))
        elif kind == 'MultiScaleFlipAug':  # official test time: one scale, no flip
            assert not t.get('flip', False)
            steps.append(('resize', _scales(t['img_scale']), True))
        elif kind == 'RandomFlip' and (not official or 'flip_ratio' in t):
            steps.append(('flip', t['flip_ratio' if official else 'prob']))
        elif kind == 'RandomCrop':
            steps.append(('crop', t['crop_type'], tuple(t['crop_size']),
                          t.get('allow_negative_crop', False)))
        elif kind in ('AutoAugment', 'RandomChoice'):
            choices = t['policies' if official else 'transforms']
            steps.append(('choice', [_steps(c, train, official) for c in choices]))
    return steps


def _official_pad(pipeline: list) -> int:
    for t in pipeline:
        if t['type'] == 'Pad':
            return t['size_divisor']
        if t['type'] == 'MultiScaleFlipAug':
            return _official_pad(t['transforms'])
    return 1


# ------------------------------------------------------------------------------------------ models
def _plain(value: Any) -> Any:
    """Lists for tuples, no ``_scope_``, mmdet 2.x-only keys dropped, mmdet 3.x's renamings undone."""
    if isinstance(value, dict):
        value = {k: _plain(v) for k, v in value.items()
                 if k != '_scope_' and k not in MMDET2_ONLY}
        if value.get('type') == 'HungarianAssigner' and 'cls_cost' in value:
            value = dict(type='HungarianAssigner', match_costs=[
                value.pop('cls_cost'), value.pop('reg_cost'), value.pop('iou_cost')], **{
                    k: v for k, v in value.items() if k != 'type'})
        if value.get('type') == 'BBoxL1Cost':
            value.setdefault('box_format', 'xyxy')  # the default on both sides
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _detr_official(model: dict) -> dict:
    """mmdet 2.x's DETR head (transformer inside) in mmdet 3.x's layout."""
    head = dict(model['bbox_head'])
    transformer = head.pop('transformer')
    encoder, decoder = transformer['encoder'], transformer['decoder']
    enc_layer, dec_layer = encoder['transformerlayers'], decoder['transformerlayers']
    enc_attn = enc_layer['attn_cfgs'][0]
    dec_attn = dec_layer['attn_cfgs']

    def attn(cfg: dict) -> dict:
        return dict(embed_dims=cfg['embed_dims'], num_heads=cfg['num_heads'],
                    dropout=cfg['dropout'])

    def ffn(layer: dict) -> dict:
        return dict(feedforward_channels=layer['feedforward_channels'],
                    ffn_drop=layer['ffn_dropout'])

    return dict(
        neck=dict(in_channels=[head.pop('in_channels')], out_channels=enc_attn['embed_dims']),
        encoder=dict(num_layers=encoder['num_layers'], self_attn=attn(enc_attn), ffn=ffn(enc_layer)),
        decoder=dict(num_layers=decoder['num_layers'], self_attn=attn(dec_attn),
                     cross_attn=attn(dec_attn), ffn=ffn(dec_layer),
                     return_intermediate=decoder['return_intermediate']),
        positional_encoding={k: v for k, v in head.pop('positional_encoding').items()
                             if k != 'type'},
        bbox_head=head, train_cfg=model['train_cfg'], test_cfg=model['test_cfg'])


def _detr_ours(model: dict) -> dict:
    def attn(cfg: dict) -> dict:
        return dict(embed_dims=cfg['embed_dims'], num_heads=cfg['num_heads'],
                    dropout=cfg['dropout'])

    def ffn(cfg: dict) -> dict:
        return dict(feedforward_channels=cfg['feedforward_channels'], ffn_drop=cfg['ffn_drop'])

    enc, dec = model['encoder'], model['decoder']
    head = {k: v for k, v in model['bbox_head'].items() if k != 'embed_dims'}
    return dict(
        neck=dict(in_channels=model['neck']['in_channels'],
                  out_channels=model['neck']['out_channels']),
        encoder=dict(num_layers=enc['num_layers'], self_attn=attn(enc['layer_cfg']['self_attn_cfg']),
                     ffn=ffn(enc['layer_cfg']['ffn_cfg'])),
        decoder=dict(num_layers=dec['num_layers'], self_attn=attn(dec['layer_cfg']['self_attn_cfg']),
                     cross_attn=attn(dec['layer_cfg']['cross_attn_cfg']),
                     ffn=ffn(dec['layer_cfg']['ffn_cfg']),
                     return_intermediate=dec['return_intermediate']),
        positional_encoding=model['positional_encoding'],
        bbox_head=head, train_cfg=model['train_cfg'], test_cfg=model['test_cfg'])


def _model(model: dict, official: bool) -> dict:
    model = _plain(model)
    if model['type'] == 'DETR':
        return _detr_official(model) if official else _detr_ours(model)
    # A dense head without a sampler samples with PseudoSampler in mmdet 2.x and 3.x alike;
    # mmdet 3.x's RetinaNet names it, the official (mmdet 2.13) base does not.
    if model.get('train_cfg', {}).get('sampler') == dict(type='PseudoSampler'):
        del model['train_cfg']['sampler']
    return {k: v for k, v in model.items() if k not in ('backbone', 'data_preprocessor')}


def _official_backbone(cfg: Config) -> dict:
    """The official backbone class (detection/pvt.py, pvt_v2.py) as our type / arch / settings."""
    name = cfg.model.backbone.type
    v2 = name.startswith('pvt_v2')
    source = (OFFICIAL.parent / ('pvt_v2.py' if v2 else 'pvt.py')).read_text()
    block = re.search(rf'^class {name}\(.*?(?=^@|\Z)', source, re.S | re.M).group(0)
    rate = re.search(r'drop_path_rate=([\d.]+)', block)
    arch = name[len('pvt_v2_' if v2 else 'pvt_'):].replace('_f4', '')
    return dict(type='PVTv2' if v2 else 'PVT', arch=arch,
                out_indices=[3] if 'F4=True' in block else [0, 1, 2, 3],
                drop_path_rate=float(rate.group(1)) if rate else 0.0,  # the class default: 0
                checkpoint=cfg.model.pretrained)


def _our_backbone(cfg: Config) -> dict:
    backbone = cfg.model.backbone
    return dict(type=backbone.type, arch=backbone.arch,
                out_indices=list(backbone.get('out_indices', (0, 1, 2, 3))),
                drop_path_rate=backbone.get('drop_path_rate', 0.1),  # PVT's default
                checkpoint=backbone.init_cfg.checkpoint)


# ------------------------------------------------------------------------------------------ recipe
def official_recipe(cfg: Config) -> dict:
    opt = cfg.optimizer
    schedule = cfg.lr_config
    clip = cfg.get('optimizer_config', {}).get('grad_clip')
    return dict(
        optimizer=dict(type=opt.type, lr=opt.lr, weight_decay=opt.weight_decay,
                       betas=list(opt.get('betas', (0.9, 0.999))),
                       custom_keys=_plain(opt.get('paramwise_cfg', {}).get('custom_keys', {}))),
        clip_grad=_plain(clip) if clip else None,
        epochs=cfg.runner.max_epochs,
        steps=list(schedule.step),
        warmup=(dict(iters=schedule.warmup_iters, ratio=schedule.warmup_ratio)
                if schedule.get('warmup') == 'linear' else None),
        batch=cfg.data.samples_per_gpu,
        train_aug=_steps(cfg.data.train.pipeline, train=True, official=True),
        test_aug=_steps(cfg.data.test.pipeline, train=False, official=True),
        pad=[_official_pad(cfg.data.train.pipeline), _official_pad(cfg.data.test.pipeline)],
        backbone=_official_backbone(cfg),
        model=_model(cfg.model.to_dict(), official=True))


def our_recipe(cfg: Config) -> dict:
    wrapper = cfg.optim_wrapper
    opt = wrapper.optimizer
    steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
    assert len(steps) == 1 and steps[0].by_epoch and steps[0].gamma == 0.1, cfg.param_scheduler
    warmups = [s for s in cfg.param_scheduler if s.type == 'LinearLR']
    assert all(not s.by_epoch and s.begin == 0 for s in warmups), warmups
    pad = cfg.model.data_preprocessor.get('pad_size_divisor', 1)
    return dict(
        optimizer=dict(type=opt.type, lr=opt.lr, weight_decay=opt.weight_decay,
                       betas=list(opt.get('betas', (0.9, 0.999))),
                       custom_keys=_plain(wrapper.get('paramwise_cfg', {}).get('custom_keys', {}))),
        clip_grad=_plain(wrapper.get('clip_grad')) or None,
        epochs=cfg.train_cfg.max_epochs,
        steps=list(steps[0].milestones),
        warmup=(dict(iters=warmups[0].end, ratio=warmups[0].start_factor) if warmups else None),
        batch=cfg.train_dataloader.batch_size,
        train_aug=_steps(cfg.train_dataloader.dataset.pipeline, train=True, official=False),
        test_aug=_steps(cfg.test_dataloader.dataset.pipeline, train=False, official=False),
        pad=[pad, pad],
        backbone=_our_backbone(cfg),
        model=_model(cfg.model.to_dict(), official=False))


def differences(ours: Any, official: Any, path: str = '') -> list[str]:
    """Every place where the two recipes differ, as 'path: ours != official'."""
    if isinstance(ours, dict) and isinstance(official, dict):
        out = []
        for key in sorted(set(ours) | set(official), key=str):
            if key not in official:
                out.append(f'{path}.{key}: only ours ({ours[key]!r})')
            elif key not in ours:
                out.append(f'{path}.{key}: only official ({official[key]!r})')
            else:
                out += differences(ours[key], official[key], f'{path}.{key}')
        return out
    if isinstance(ours, list) and isinstance(official, list) and len(ours) == len(official):
        return [d for i, (a, b) in enumerate(zip(ours, official))
                for d in differences(a, b, f'{path}[{i}]')]
    if isinstance(ours, float) or isinstance(official, float):
        same = ours == pytest.approx(official, rel=1e-9)
    else:
        same = ours == official
    return [] if same else [f'{path}: ours {ours!r} != official {official!r}']


# -------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize('ours', sorted(PAIRS))
def test_recipe_equals_the_official_config(ours):
    found = differences(our_recipe(load_ours(ours)), official_recipe(load_official(PAIRS[ours])))
    assert not found, '\n'.join(found)


MUTATIONS = {
    'lr': ('atss_pvt_v2_b2_fpn_3x', lambda c: c.optim_wrapper.optimizer.update(lr=2e-4),
           '.optimizer.lr'),
    'norm decay': ('gfl_pvt_v2_b2_fpn_3x',
                   lambda c: c.optim_wrapper.paramwise_cfg.custom_keys.norm.update(decay_mult=1.0),
                   '.optimizer.custom_keys.norm.decay_mult'),
    'grad clip': ('sparse_rcnn_pvt_v2_b2_fpn_3x',
                  lambda c: c.optim_wrapper.clip_grad.update(max_norm=0.1), '.clip_grad.max_norm'),
    'lr step': ('cascade_mask_rcnn_pvt_v2_b2_fpn_3x',
                lambda c: c.param_scheduler[-1].update(milestones=[27, 34]), '.steps[1]'),
    'warm-up': ('mask_rcnn_pvt_v2_b2_li_fpn_3x',
                lambda c: c.param_scheduler[0].update(end=1000), '.warmup.iters'),
    'batch': ('sparse_rcnn_pvt_v2_b2_li_fpn_3x', lambda c: c.train_dataloader.update(batch_size=1),
              '.batch'),
    'crop': ('atss_pvt_v2_b2_li_fpn_3x',
             lambda c: c.train_dataloader.dataset.pipeline[3].transforms[1][1].update(
                 crop_size=(384, 512)), '.train_aug[2]'),
    'test scale': ('retinanet_pvt_small_fpn_640',
                   lambda c: c.test_dataloader.dataset.pipeline[1].update(scale=(1333, 800)),
                   '.test_aug[0]'),
    'neck': ('gfl_pvt_v2_b2_li_fpn_3x', lambda c: c.model.neck.update(add_extra_convs='on_input'),
             '.model.neck.add_extra_convs'),
    'head loss': ('cascade_mask_rcnn_pvt_v2_b2_li_fpn_3x',
                  lambda c: c.model.roi_head.bbox_head[2].loss_bbox.update(loss_weight=2.0),
                  '.model.roi_head.bbox_head[2].loss_bbox.loss_weight'),
    'assigner': ('detr_pvt_small_50e',
                 lambda c: c.model.train_cfg.assigner.match_costs[1].update(weight=2.0),
                 '.model.train_cfg.assigner.match_costs[1].weight'),
    'drop path': ('retinanet_pvt_large_fpn', lambda c: c.model.backbone.update(drop_path_rate=0.1),
                  '.backbone.drop_path_rate'),
    'checkpoint': ('gfl_pvt_v2_b2_li_fpn_3x',
                   lambda c: c.model.backbone.init_cfg.update(checkpoint='pvt_v2_b2.pth'),
                   '.backbone.checkpoint'),
    'proposals': ('sparse_rcnn_pvt_v2_b2_fpn_3x',
                  lambda c: c.model.rpn_head.update(num_proposals=100),
                  '.model.rpn_head.num_proposals'),
}


@pytest.mark.parametrize('what', sorted(MUTATIONS))
def test_a_changed_value_is_caught(what):
    """The comparison can fail: one value changed in an in-memory copy is reported at its path."""
    name, mutate, path = MUTATIONS[what]
    cfg = copy.deepcopy(load_ours(name))
    mutate(cfg)
    found = differences(our_recipe(cfg), official_recipe(load_official(PAIRS[name])))
    assert found and all(d.startswith(path) for d in found), found


def test_deformable_detr_is_mmdet_recipe_with_pvt_v2_b2():
    """No official config: everything but the backbone and the ChannelMapper widths is mmdet's
    Deformable DETR R50 recipe."""
    ours = load_ours('deformable_detr_pvt_v2_b2').to_dict()
    import mmdet
    mmdet_configs = Path(mmdet.__file__).parent / '.mim' / 'configs'
    mmdet = Config.fromfile(
        str(mmdet_configs / 'deformable_detr' / 'deformable-detr_r50_16xb2-50e_coco.py')).to_dict()
    assert ours['model']['backbone'] == dict(
        type='PVTv2', arch='b2', out_indices=(1, 2, 3), drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth'))
    assert ours['model']['neck']['in_channels'] == [128, 320, 512]
    for cfg in (ours, mmdet):
        del cfg['model']['backbone'], cfg['model']['neck']['in_channels']
    keys = set(mmdet) - {'custom_imports'}
    assert {k: _plain(ours[k]) for k in keys} == {k: _plain(mmdet[k]) for k in keys}


@pytest.mark.parametrize('name', NEW_CONFIGS)
def test_new_config_keeps_scope_import_and_checkpoint(name):
    cfg = load_ours(name)
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(imports=['pvt_det'], allow_failed_imports=False)
    backbone = cfg.model.backbone
    arch = {'PVT': 'pvt_', 'PVTv2': 'pvt_v2_'}[backbone.type] + backbone.arch
    assert backbone.init_cfg == dict(
        type='Pretrained', checkpoint=f'https://github.com/whai362/PVT/releases/download/v2/{arch}.pth')
    code = [line for line in (CONFIGS / f'{name}.py').read_text().splitlines()
            if line.strip() and not line.lstrip().startswith('#')]
    assert len(code) <= 25, f'{name}.py has {len(code)} lines of code: a leaf says only what differs'


@pytest.mark.parametrize('name', sorted(PARAMS_M))
def test_parameter_count_is_pinned(name):
    import torch
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    cfg = load_ours(name)
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    with torch.device('meta'):  # shapes only: no memory, no initialisation (seconds saved)
        model = MODELS.build(cfg.model)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert millions == pytest.approx(PARAMS_M[name], abs=0.005), f'{name}: {millions:.3f}M'
