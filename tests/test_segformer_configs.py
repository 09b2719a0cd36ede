"""The SegFormer configs are mmseg's own segformer/ configs value for value (only the backbone is pvt_det's
PVTv2 running the same MiT), and one of them trains on generated ADE20K-format data through tools/train.py."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

import pvt_det  # noqa: F401
from pvt_det.models.backbones.pvt import MIT_ARCHS
from helpers import SEG_64PX_PIPELINES, SEG_64PX_PREPROCESSOR

REPO = Path(__file__).resolve().parents[1]
MMSEG_NAMES = {'ade20k': 'segformer/segformer_mit-b{}_8xb2-160k_ade20k-512x512.py',
               'cityscapes': 'segformer/segformer_mit-b{}_8xb1-160k_cityscapes-1024x1024.py'}
CASES = [(n, dataset) for n in range(6) for dataset in MMSEG_NAMES]


def mmseg_config(path: str) -> Config:
    import mmseg
    return Config.fromfile(str(Path(mmseg.__file__).parent / '.mim' / 'configs' / path))


def without_scopes(value):
    """The config without the ``_scope_`` marks mmengine adds to what a ``mmseg::`` base defines."""
    if isinstance(value, dict):
        return {key: without_scopes(item) for key, item in value.items() if key != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(without_scopes(item) for item in value)
    return value


def test_every_segformer_config_is_shipped():
    shipped = sorted(p.name for p in (REPO / 'configs').glob('segformer_*.py'))
    assert shipped == sorted(f'segformer_mit_b{n}_{dataset}.py' for n, dataset in CASES)


@pytest.mark.parametrize('n,dataset', CASES, ids=[f'b{n}_{d}' for n, d in CASES])
def test_config_is_mmsegs_value_for_value(n, dataset):
    ours = without_scopes(Config.fromfile(str(REPO / 'configs' / f'segformer_mit_b{n}_{dataset}.py')).to_dict())
    theirs = mmseg_config(MMSEG_NAMES[dataset].format(n)).to_dict()
    backbone, reference = ours['model'].pop('backbone'), theirs['model'].pop('backbone')
    assert ours.pop('custom_imports') == dict(imports=['pvt_det'], allow_failed_imports=False)
    for name in [key for key in ours if key.endswith('_backbone')]:  # pvt_det's base: the backbones it offers
        ours.pop(name)
    assert ours == theirs  # data, schedule, optimiser (AdamW 6e-5, head lr x10, no decay on norms), test mode
    # The backbone: the same MiT, described by pvt_det's arch table
    spec = MIT_ARCHS[backbone['arch']]
    assert backbone['type'] == 'PVTv2' and reference['type'] == 'MixVisionTransformer'
    assert [reference['embed_dims'] * h for h in reference['num_heads']] == spec['embed_dims']
    assert (reference['num_layers'], reference['num_heads'], reference['sr_ratios']) == \
        (spec['depths'], spec['num_heads'], spec['sr_ratios'])
    assert [reference['mlp_ratio']] * 4 == spec['mlp_ratios'] and reference['patch_sizes'] == [7, 3, 3, 3]
    assert (reference['qkv_bias'], reference['drop_rate'], reference['attn_drop_rate']) == (True, 0.0, 0.0)
    assert backbone['drop_path_rate'] == reference['drop_path_rate']
    assert backbone['out_indices'] == tuple(reference['out_indices'])
    assert backbone['init_cfg'] == reference['init_cfg']
    if dataset == 'cityscapes':
        assert ours['model']['test_cfg'] == dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768))
    else:
        assert ours['train_cfg']['max_iters'] == 160000 and ours['crop_size'] == (512, 512)


# ---------------------------------------------------------------------------------------------------- training
OWN_CLASSES = ('background', 'square', 'circle', 'triangle')
ITERS = 30
TRAIN_CONFIG = '''\
_base_ = {base!r}
data_root = {data_root!r}
''' + SEG_64PX_PREPROCESSOR + SEG_64PX_PIPELINES + f'''\
dataset = dict(type='BaseSegDataset', data_root=data_root, img_suffix='.jpg', seg_map_suffix='.png',
               reduce_zero_label=True, metainfo=dict(classes={OWN_CLASSES!r}))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(**dataset, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(**dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(data_preprocessor=data_preprocessor, backbone=dict(init_cfg=None),
             decode_head=dict(num_classes={len(OWN_CLASSES)}))
# From scratch in {ITERS} iterations: a short warm-up instead of the recipe's 1500, and a larger lr.
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10)]
train_cfg = dict(max_iters={ITERS}, val_interval={ITERS})
default_hooks = dict(checkpoint=dict(interval={ITERS}), logger=dict(interval=10))
randomness = dict(seed=0)
'''


def majority_class_miou(annotations: Path) -> float:
    """mIoU (%) of predicting the most frequent class everywhere: what chance gives on these images."""
    import cv2
    labels = np.concatenate([cv2.imread(str(p), cv2.IMREAD_UNCHANGED).ravel() for p in annotations.glob('*.png')])
    counts = np.bincount(labels[labels > 0] - 1, minlength=len(OWN_CLASSES))  # 0 is ignored (reduce_zero_label)
    return 100.0 * counts.max() / counts.sum() / len(OWN_CLASSES)


@pytest.mark.slow
def test_segformer_mit_b0_trains_on_generated_ade20k_above_chance(tmp_path):
    from helpers import run_tool_in_process
    from pvt_det.datasets.synthetic import make_ade20k_dataset
    data_root = tmp_path / 'ade'
    make_ade20k_dataset(data_root, num_train=8, num_val=4, image_size=(64, 64), classes=OWN_CLASSES, seed=3)
    config = tmp_path / 'my_segformer.py'
    config.write_text(TRAIN_CONFIG.format(base=str(REPO / 'configs' / 'segformer_mit_b0_ade20k.py'),
                                          data_root=str(data_root)))
    work_dir = tmp_path / 'work'
    result = run_tool_in_process('train', config, '--work-dir', work_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    scalars = next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()
    losses = [json.loads(line)['loss'] for line in scalars if '"loss"' in line]
    miou = [json.loads(line)['mIoU'] for line in scalars if '"mIoU"' in line]
    assert losses[-1] < losses[0], losses
    chance = majority_class_miou(data_root / 'annotations' / 'validation')
    assert miou and miou[-1] > chance + 5, (miou, chance)
    assert re.search(r'mIoU', result.stdout + result.stderr)
