"""Whole detector/segmentor checkpoints in every backbone layout, through the tools and mmengine's loaders.

One randomised model per task (RetinaNet-PVTv2, Mask R-CNN-PVT v1 with position embeddings, Semantic FPN-PVT v1)
is written in three layouts: the official whai362 releases' (``backbone.patch_embed1.*``, ``backbone.block1.*``,
v1's stage-4 ``pos_embed4`` with its unused cls row), mmdet 3.x's (``backbone.layers.0.0.*``, written by mmdet's
own ``pvt_convert``) and ours. Every layout must give ``tools/test.py`` the same predictions as ours and restore
every tensor through ``mmengine.runner.load_checkpoint``; checkpoints that do not fit are refused before anything
is evaluated or predicted.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import pvt_det  # noqa: F401
from pvt_det.datasets.synthetic import make_ade20k_dataset, make_coco_dataset
from pvt_det.models.checkpoint import CheckpointError
from pvt_det.models.model_checkpoint import fit_state_dict
from helpers import SEG_64PX_PIPELINES

REPO = Path(__file__).resolve().parents[1]
CLASSES = ('square', 'circle', 'triangle')
SEG_CLASSES = ('background', 'square', 'circle', 'triangle')
ARCH = dict(embed_dims=[16, 32, 48, 64], num_heads=[1, 2, 3, 4], depths=[1, 1, 1, 1],
            mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1])
WIDER = dict(ARCH, embed_dims=[16, 32, 64, 64], num_heads=[1, 2, 4, 4])  # "another variant"
V1 = ", pretrain_img_size=64"  # v1 position grids of a 64-px model: 16x16 ... 2x2 (+ a cls row in stage 4)

DET_CONFIG = """
_base_ = '{base}'
data_root = '{root}/'
metainfo = dict(classes={classes!r})
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={masks}),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={masks}),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
dataset = dict(data_root=data_root, metainfo=metainfo)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    ann_file='annotations/instances_train2017.json', data_prefix=dict(img='train2017/'),
    pipeline=train_pipeline, **dataset))
test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    ann_file='annotations/instances_val2017.json', data_prefix=dict(img='val2017/'),
    pipeline=test_pipeline, **dataset))
test_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
model = dict(backbone=dict(arch={arch!r}, init_cfg=None, drop_path_rate=0.0{extra}),
             neck=dict(in_channels={channels}), {head})
# one step at lr 0: the weights after it are the loaded ones
optim_wrapper = dict(optimizer=dict(lr=0.0), clip_grad=None)
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1, val_interval=1000)
val_cfg = None  # training here only checks what load_from loads
val_dataloader = None
val_evaluator = None
param_scheduler = []
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=1))
log_processor = dict(by_epoch=False, window_size=1)
"""
RETINANET_HEAD = 'bbox_head=dict(num_classes={n}), test_cfg=dict(score_thr=0.0)'
MASK_RCNN_HEAD = ('roi_head=dict(bbox_head=dict(num_classes={n}), mask_head=dict(num_classes={n})), '
                  'test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=50), rcnn=dict(score_thr=0.0))')
SEG_CONFIG = """
_base_ = '{base}'
data_root = '{root}'
""" + SEG_64PX_PIPELINES + """
dataset = dict(data_root=data_root, type='BaseSegDataset', img_suffix='.jpg', seg_map_suffix='.png',
               reduce_zero_label=True, metainfo=dict(classes={classes!r}))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(**dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = dict(dataset=dict(data_root=data_root))  # every loader reads the data_root set here
model = dict(backbone=dict(arch={arch!r}, init_cfg=None, drop_path_rate=0.0{extra}),
             neck=dict(in_channels={channels}), decode_head=dict(num_classes={n}))
"""


# ------------------------------------------------------------------------------------------ layouts
def official_layout(state_dict: dict, cls_row: bool) -> dict:
    """Ours -> the whai362 detection/segmentation release layout (test-side, independent of the converters)."""
    out = {}
    for key, value in state_dict.items():
        match = re.fullmatch(r'backbone\.stages\.(\d)\.(patch_embed|pos_embed|blocks|norm)(.*)', key)
        if match is None:
            out[key] = value
            continue
        stage, kind, rest = int(match[1]) + 1, match[2], match[3]
        if kind == 'pos_embed' and cls_row and stage == 4:  # the ImageNet model's stage-4 cls row, unused
            value = torch.cat([torch.randn(1, 1, value.shape[2]), value], dim=1)
        name = dict(patch_embed=f'patch_embed{stage}', pos_embed=f'pos_embed{stage}', blocks=f'block{stage}',
                    norm=f'norm{stage}')[kind]
        out[f'backbone.{name}{rest.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.")}'] = value
    return out


def mmdet_layout(state_dict: dict) -> dict:
    """Ours -> mmdet 3.x's PVT layout, through mmdet's own converter from the official layout."""
    from mmdet.models.backbones.pvt import pvt_convert
    official = official_layout(state_dict, cls_row=False)
    backbone = {k[len('backbone.'):]: v for k, v in official.items() if k.startswith('backbone.')}
    out = {'backbone.' + k: v for k, v in pvt_convert(backbone).items()}
    out.update({k: v for k, v in state_dict.items() if not k.startswith('backbone.')})
    return out


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('coco')
    make_coco_dataset(root, num_train=2, num_val=2, image_size=(64, 64), classes=CLASSES, seed=1)
    return root


@pytest.fixture(scope='module')
def ade(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('ade')
    make_ade20k_dataset(root, num_train=2, num_val=2, image_size=(64, 64), classes=SEG_CLASSES, seed=1)
    return root


MODELS = {
    'retinanet_pvt_v2': ('retinanet_pvt_v2_b0_fpn.py', ARCH, '', 'det'),
    'mask_rcnn_pvt_v1': ('mask_rcnn_pvt_tiny_fpn.py', ARCH, V1, 'det'),
    'sem_fpn_pvt_v1': ('sem_fpn_pvt_tiny_ade20k.py', ARCH, V1, 'seg'),
}


def write_config(path: Path, name: str, root: Path, arch: dict = ARCH, num_classes: int | None = None) -> Path:
    base, _, extra, task = MODELS[name]
    channels = arch['embed_dims']
    arch = dict(arch, _delete_=True)  # the base config names its arch ('b0'): a dict replaces it
    if task == 'seg':
        text = SEG_CONFIG.format(base=REPO / 'configs' / base, root=root, classes=SEG_CLASSES, arch=arch,
                                 extra=extra, channels=channels, n=num_classes or len(SEG_CLASSES))
    else:
        head = (MASK_RCNN_HEAD if base.startswith('mask') else RETINANET_HEAD).format(n=num_classes or len(CLASSES))
        text = DET_CONFIG.format(base=REPO / 'configs' / base, root=root, classes=CLASSES, masks=base.startswith('mask'),
                                 arch=arch, extra=extra, channels=channels, head=head)
    path.write_text(text)
    return path


def build_model(config: Path, seed: int = 0):
    """The config's model with random weights (backbone perturbed off its initialisation), as the runner builds it."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(str(config))
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS as registry
        from mmdet.utils import register_all_modules
    else:
        from mmseg.registry import MODELS as registry
        from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.build(cfg.model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.backbone.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return model.eval()


def save_layouts(model, folder: Path, v1: bool) -> dict[str, Path]:
    ours = model.state_dict()
    meta = dict(dataset_meta=dict(classes=CLASSES))
    files = {}
    for layout, state in (('ours', ours), ('official', official_layout(ours, cls_row=v1)),
                          ('mmdet', mmdet_layout(ours))):
        files[layout] = folder / f'{layout}.pth'
        torch.save({'state_dict': state, 'meta': meta}, files[layout])
    return files


def run_test_tool(config: Path, checkpoint: Path, work_dir: Path, out: Path) -> int:
    from pvt_det.tools.test import main
    return main([str(config), str(checkpoint), '--work-dir', str(work_dir), '--out', str(out)])


def same(a, b) -> bool:
    """Deep equality of dumped predictions (dicts, lists, arrays, tensors)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


# ------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize('name', list(MODELS))
def test_every_layout_gives_the_same_predictions_and_tensors(name, coco, ade, tmp_path):
    from mmengine.runner import load_checkpoint
    _, _, extra, task = MODELS[name]
    config = write_config(tmp_path / f'{name}.py', name, ade if task == 'seg' else coco)
    model = build_model(config)
    files = save_layouts(model, tmp_path, v1=bool(extra))
    expected = model.state_dict()
    # An mmdet file computes with mmdet's LayerNorm eps (1e-6 everywhere; docs/backbones.md): its reference is
    # our model with that eps, saved in our layout (which keeps the eps in the state dict's metadata).
    compare_to = {'mmdet': 'ours_mmdet_eps', 'ours_mmdet_eps': 'ours_mmdet_eps'}
    if name == 'retinanet_pvt_v2':
        model.backbone.follow_norm_eps(1e-6, 1e-6)
        files['ours_mmdet_eps'] = tmp_path / 'ours_mmdet_eps.pth'
        torch.save({'state_dict': model.state_dict(), 'meta': dict(dataset_meta=dict(classes=CLASSES))},
                   files['ours_mmdet_eps'])

    outputs = {}
    fresh = build_model(config, seed=1)
    for layout, path in files.items():
        # mmengine's loader, as user code calls it: the backbone converts its keys itself (strict: every key)
        load_checkpoint(fresh, str(path), strict=True)
        restored = fresh.state_dict()
        assert restored.keys() == expected.keys()
        assert all(torch.equal(restored[k], expected[k]) for k in expected), layout
        if layout == 'mmdet' and name != 'retinanet_pvt_v2':
            continue  # every tensor restored exactly is every prediction; one model goes through test.py
        out = tmp_path / (f'{layout}_pred' if task == 'seg' else f'{layout}.pkl')
        assert run_test_tool(config, path, tmp_path / f'work_{layout}', out) == 0, layout
        outputs[layout] = ({p.name: p.read_bytes() for p in sorted(out.rglob('*.png'))} if task == 'seg'
                           else pickle.loads(out.read_bytes()))
    assert outputs['ours'], 'nothing was predicted'
    assert len(outputs) > 1
    for layout, predictions in outputs.items():
        assert same(predictions, outputs[compare_to.get(layout, 'ours')]), layout
    if 'ours_mmdet_eps' in outputs:  # the eps is not a no-op: it changes the raw scores
        assert not same(outputs['ours_mmdet_eps'], outputs['ours'])


@pytest.fixture(scope='module')
def retinanet(coco, tmp_path_factory):
    folder = tmp_path_factory.mktemp('retinanet')
    config = write_config(folder / 'retinanet.py', 'retinanet_pvt_v2', coco)
    model = build_model(config)
    return config, model, save_layouts(model, folder, v1=False)


def test_misfits_are_refused_by_test_and_infer_before_running(retinanet, coco, tmp_path, capsys):
    from pvt_det.tools.infer import main as infer
    from pvt_det.tools.test import main as test
    config, _, _ = retinanet
    other_variant = tmp_path / 'wider.pth'
    wider = build_model(write_config(tmp_path / 'wider.py', 'retinanet_pvt_v2', coco, arch=WIDER))
    torch.save({'state_dict': official_layout(wider.state_dict(), cls_row=False), 'meta': {}}, other_variant)
    other_detector = tmp_path / 'mask_rcnn.pth'
    mask_rcnn = build_model(write_config(tmp_path / 'mask_rcnn.py', 'mask_rcnn_pvt_v1', coco))
    torch.save({'state_dict': mask_rcnn.state_dict(), 'meta': {}}, other_detector)
    image = next((coco / 'val2017').glob('*.jpg'))
    for checkpoint, expected in (
            (other_variant, r'shape mismatches \[backbone\.stages\.2\.patch_embed\.proj\.weight: checkpoint '
                            r'\(64, 32, 3, 3\) vs model \(48, 32, 3, 3\).*another variant'),
            (other_detector, r'another model \(it has backbone, neck, roi_head, rpn_head; the config builds '
                             r'backbone, bbox_head, neck\)')):
        capsys.readouterr()
        assert test([str(config), str(checkpoint), '--work-dir', str(tmp_path / 'work')]) == 1
        assert infer([str(image), str(config), str(checkpoint), '--out-dir', str(tmp_path / 'pred')]) == 1
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 2 and all(re.search(expected, line) for line in lines), captured.err[-3000:]
        assert 'bbox_mAP' not in captured.out
    assert not (tmp_path / 'pred').exists()  # refused before anything was written


def test_an_evaluation_that_measures_nothing_fails(retinanet, tmp_path, capsys):
    """No prediction above the score threshold: mmdet's CocoMetric returns no metrics, and exit 0 would read as
    a result."""
    from pvt_det.tools.test import main as test
    config, _, files = retinanet
    capsys.readouterr()
    assert test([str(config), str(files['ours']), '--work-dir', str(tmp_path / 'work'),
                 '--cfg-options', 'model.test_cfg.score_thr=1.1']) == 1
    assert re.search(r'^test: error: no metrics: the model predicted nothing above its score threshold',
                     capsys.readouterr().err, re.M)


def test_fine_tuning_from_an_80_class_detector(coco, tmp_path, capsys):
    """load_from an 80-class RetinaNet (official layout) into a 3-class config: backbone and neck load exactly,
    the class-count head keys are skipped with one warning naming them, and training runs."""
    from pvt_det.tools.train import main as train
    coco80 = build_model(write_config(tmp_path / 'coco80.py', 'retinanet_pvt_v2', coco, num_classes=80))
    source = tmp_path / 'retinanet_coco80.pth'
    torch.save({'state_dict': official_layout(coco80.state_dict(), cls_row=False), 'meta': {}}, source)
    config = write_config(tmp_path / 'finetune.py', 'retinanet_pvt_v2', coco)
    work_dir = tmp_path / 'work'
    assert train([str(config), '--work-dir', str(work_dir), '--cfg-options', f'load_from={source}']) == 0
    log = next(work_dir.glob('*/*.log')).read_text()
    warnings = [line for line in log.splitlines() if 'fine-tuning from' in line]
    assert len(warnings) == 1 and 'WARNING' in warnings[0], warnings
    assert "head keys whose class count differs [bbox_head.retina_cls.weight, bbox_head.retina_cls.bias]" \
        in warnings[0]
    assert 'missing keys' not in log  # mmengine saw a complete state dict
    assert re.search(r'Iter\(train\) \[1/1\].*loss: [\d.]+', log)
    trained = torch.load(work_dir / 'iter_1.pth', weights_only=False)['state_dict']
    expected = coco80.state_dict()
    body = [k for k in expected if k.startswith(('backbone.', 'neck.'))]
    assert body and all(torch.equal(trained[k], expected[k]) for k in body)  # lr 0: as loaded
    assert torch.equal(trained['bbox_head.reg_convs.0.conv.weight'], expected['bbox_head.reg_convs.0.conv.weight'])
    assert trained['bbox_head.retina_cls.weight'].shape[0] == 9 * len(CLASSES)


def test_fit_policies_on_state_dicts(retinanet, coco, tmp_path):
    """The pure function the hook and infer use: exact vs fine-tune, and a backbone misfit is never skipped."""
    config, model, files = retinanet
    official = torch.load(files['official'])['state_dict']
    report = fit_state_dict(model, official, 'exact', 'official.pth')
    assert report.layouts == {'backbone.': 'official'} and not report.skipped
    assert all(torch.equal(report.state_dict[k], v) for k, v in model.state_dict().items())
    assert fit_state_dict(model, torch.load(files['ours'])['state_dict']).layouts == {'backbone.': 'pvt_det'}
    # fine-tuning tolerates a class-count head, not a backbone of another variant
    coco80 = build_model(write_config(tmp_path / 'c80.py', 'retinanet_pvt_v2', coco, num_classes=80)).state_dict()
    with pytest.raises(CheckpointError, match=r'another number of classes: set num_classes'):
        fit_state_dict(model, coco80, 'exact', 'c80.pth')
    assert fit_state_dict(model, coco80, 'finetune').skipped_class_count == [
        'bbox_head.retina_cls.weight', 'bbox_head.retina_cls.bias']
    broken = dict(coco80)
    broken['neck.lateral_convs.0.conv.weight'] = broken['neck.lateral_convs.0.conv.weight'][:8]
    with pytest.raises(CheckpointError, match=r'fine-tuning \(load_from\) needs the backbone and neck to fit '
                                              r'exactly.*neck\.lateral_convs\.0\.conv\.weight: checkpoint \(8,'):
        fit_state_dict(model, broken, 'finetune', 'broken.pth')
    detr2x = dict(official, **{'bbox_head.transformer.encoder.layers.0.ffns.0.layers.0.0.weight': torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r'mmdet 2\.x DETR-family checkpoint \(mmdet 2\.13\.0\)'):
        fit_state_dict(model, detr2x, 'exact', meta=dict(mmdet_version='2.13.0'))


def test_resume_is_exact(retinanet, tmp_path):
    """--resume with a checkpoint that does not fit stops with the key, instead of resuming a partial model."""
    from pvt_det.engine import CheckpointFitHook
    config, model, files = retinanet

    # what the hook reads of mmengine's Runner while resuming
    runner = SimpleNamespace(_resume=True, _load_from=str(files['ours']), model=model, _train_loop=None)
    hook = CheckpointFitHook()
    assert hook.policy_for(runner) == 'exact'
    checkpoint = torch.load(files['ours'])
    del checkpoint['state_dict']['bbox_head.retina_cls.bias']
    with pytest.raises(CheckpointError, match=r'ours\.pth: does not fit the model .*missing keys '
                                              r'\[bbox_head\.retina_cls\.bias\]'):
        hook.after_load_checkpoint(runner, checkpoint)


def test_convert_weights_rewrites_a_detector_and_extracts_its_backbone(retinanet, tmp_path, capsys):
    from mmengine.runner import load_checkpoint
    from pvt_det.models.backbones import PVTv2
    from pvt_det.tools.convert_weights import main as convert
    config, model, files = retinanet
    checkpoint = torch.load(files['official'])
    checkpoint['meta'] = dict(mmdet_version='2.13.0', CLASSES=CLASSES)
    torch.save(checkpoint, tmp_path / 'official.pth')
    dst = tmp_path / 'ours.pth'
    assert convert([str(tmp_path / 'official.pth'), str(dst)]) == 0
    assert 'detector checkpoint (custom arch)' in capsys.readouterr().out
    written = torch.load(dst, weights_only=False)
    assert written['meta']['mmdet_version'] == '2.13.0' and written['meta']['CLASSES'] == CLASSES
    assert written['meta']['pvt_det_conversion']['source_layout'] == 'pvt_v2/official'
    expected = model.state_dict()
    assert written['state_dict'].keys() == expected.keys()  # our names: nothing left to convert
    assert all(torch.equal(written['state_dict'][k], v) for k, v in expected.items())
    assert fit_state_dict(model, written['state_dict']).layouts == {'backbone.': 'pvt_det'}
    fresh = build_model(config)
    load_checkpoint(fresh, str(dst), strict=True)
    # tools/test.py evaluates it with nothing left to convert
    assert run_test_tool(config, dst, tmp_path / 'work', tmp_path / 'pred.pkl') == 0
    log = next((tmp_path / 'work').glob('*/*.log')).read_text()
    assert 'Load checkpoint from' in log and 'converted backbone.' not in log
    # --backbone-only: a file init_cfg=Pretrained loads strictly
    backbone_file = tmp_path / 'backbone.pth'
    assert convert([str(tmp_path / 'official.pth'), str(backbone_file), '--backbone-only']) == 0
    backbone = PVTv2(ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(backbone_file)))
    backbone.init_weights()
    assert all(torch.equal(v, expected['backbone.' + k]) for k, v in backbone.state_dict().items())
    assert convert([str(tmp_path / 'official.pth'), str(tmp_path / 'x.pth'), '--arch', 'pvt_v2_b0']) == 1
    assert 'shape mismatches' in capsys.readouterr().err


def mmdet2_detr_layout(state_dict: dict) -> dict:
    """An mmdet 3.x DETR's keys -> mmdet 2.x's (head owns the transformer, mmcv 1.x attentions/ffns lists)."""
    out = {}
    for key, value in state_dict.items():
        if match := re.fullmatch(r'(encoder|decoder)\.layers\.(\d+)\.(self_attn|cross_attn|ffn|norms)\.(.+)', key):
            part, layer, kind, rest = match.groups()
            old = {'self_attn': 'attentions.0', 'cross_attn': 'attentions.1', 'ffn': 'ffns.0', 'norms': 'norms'}[kind]
            key = f'bbox_head.transformer.{part}.layers.{layer}.{old}.{rest}'
        elif key.startswith('decoder.post_norm.'):
            key = 'bbox_head.transformer.' + key
        elif key.startswith('query_embedding.'):
            key = 'bbox_head.' + key
        elif key.startswith('neck.convs.0.conv.'):
            key = 'bbox_head.input_proj.' + key[len('neck.convs.0.conv.'):]
        out[key] = value
    return out


def test_official_detr_release_of_mmdet_2_loads_into_the_mmdet_3_detr(tmp_path):
    """The official DETR-PVT-Small file (mmdet 2.13): official backbone keys and mmdet 2.x's DETR head keys."""
    config = tmp_path / 'detr.py'
    config.write_text(f"""
_base_ = '{REPO}/configs/detr_pvt_small_50e.py'
model = dict(backbone=dict(arch={dict(ARCH, _delete_=True)!r}, init_cfg=None, drop_path_rate=0.0{V1}),
             neck=dict(in_channels=[64]), bbox_head=dict(num_classes=3), encoder=dict(num_layers=1),
             decoder=dict(num_layers=2), num_queries=10)
""")
    model = build_model(config)
    expected = model.state_dict()
    release = mmdet2_detr_layout(official_layout(expected, cls_row=True))
    assert 'bbox_head.transformer.decoder.layers.1.attentions.1.attn.in_proj_weight' in release
    report = fit_state_dict(model, release, 'exact', 'detr_pvt_s.pth')
    assert report.layouts == {'': 'mmdet 2.x DETR', 'backbone.': 'official'}
    assert all(torch.equal(report.state_dict[k], v) for k, v in expected.items())
    # another mmdet 2.x DETR-family head (Deformable DETR's 2.x keys) is refused by name
    deformable = dict(release, **{'bbox_head.transformer.level_embeds': torch.zeros(4, 256)})
    with pytest.raises(CheckpointError, match=r'mmdet 2\.x DETR-family checkpoint: .*converts plain DETR only'):
        fit_state_dict(model, deformable, 'exact')
