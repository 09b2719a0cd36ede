"""tools/train.py, test.py, infer.py and dist_*.sh on detection configs, end to end on generated data.

The training runs use user-style configs that inherit the shipped leaf configs (only the dataset,
image size and iteration count change), as a user with an own COCO-format dataset would.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pvt_det.datasets.synthetic import make_coco_dataset
from helpers import load_tool, run_tool_in_process

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CLASSES = ('square', 'circle', 'triangle')

USER_CONFIG = """
_base_ = '{base}'
data_root = '{data_root}/'
metainfo = dict(classes={classes!r})
size = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={masks}),
    dict(type='Resize', scale=size, keep_ratio=True),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={masks}),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='{train_ann}', data_prefix=dict(img='{train_img}'),
                 metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='{val_ann}', data_prefix=dict(img='{val_img}'),
                 metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + '{val_ann}')
test_evaluator = val_evaluator
model = dict(backbone=dict(init_cfg=None, drop_path_rate=0.0), {head})
# A few iterations at the shipped learning rate, no warm-up; tools/test.py does the evaluation.
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={iters}, val_interval=1000)
param_scheduler = []
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval={iters}))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0)
"""
RETINANET_HEAD = "bbox_head=dict(num_classes={n}), test_cfg=dict(score_thr=0.0)"
# Fewer sampled RoIs and proposals than on COCO keep the step cheap; the architecture is unchanged.
MASK_RCNN_HEAD = ("roi_head=dict(bbox_head=dict(num_classes={n}), mask_head=dict(num_classes={n})), "
                  "train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=100), "
                  "rcnn=dict(sampler=dict(num=64))), "
                  "test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100), rcnn=dict(score_thr=0.0))")


def write_user_config(path: Path, base: str, data_root: Path, iters: int = 4,
                      classes: tuple = CLASSES, layout: dict | None = None) -> Path:
    layout = layout or dict(train_ann='annotations/instances_train2017.json', train_img='train2017/',
                            val_ann='annotations/instances_val2017.json', val_img='val2017/')
    mask = base.startswith('mask_rcnn')
    head = (MASK_RCNN_HEAD if mask else RETINANET_HEAD).format(n=len(classes))
    path.write_text(USER_CONFIG.format(base=REPO / 'configs' / base, data_root=data_root,
                                       classes=classes, masks=mask, head=head, iters=iters, **layout))
    return path


def run_tool(tool_path: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """``python tools/<name>.py ARGS`` from the repository root, run in this process (see
    helpers.run_tool_in_process); the launchers' own processes are tested below."""
    proc = run_tool_in_process(Path(tool_path).stem, *args)
    if ok:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def logged_losses(work_dir: Path) -> list[float]:
    """Per-iteration total loss from mmengine's scalars.json (logger interval 1, window 1)."""
    scalars = sorted(work_dir.glob('*/vis_data/scalars.json'))[-1]
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [row['loss'] for row in rows if 'loss' in row]


def printed_metrics(stdout: str) -> dict[str, float]:
    """The ``name: value`` lines tools/test.py prints last."""
    return {m[1]: float(m[2]) for m in re.finditer(r'^(\w+): (-?[\d.]+)$', stdout, re.M)}


@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('coco')
    # 2 training images = one batch: every step sees the same images, so the loss must fall.
    make_coco_dataset(root, num_train=2, num_val=2, image_size=(64, 64), seed=1)
    return root


# ----------------------------------------------------------------------------- fast: errors, flags
@pytest.mark.parametrize('tool,args,expected', [
    ('train.py', ['configs/no_such_config.py'], 'config file not found: configs/no_such_config.py'),
    ('train.py', ['configs/retinanet_pvt_small_fpn.py', '--cfg-options',
                  'train_dataloader.dataset.data_root=no_such_dir/coco/'],
     "dataset not found: data_root 'no_such_dir/coco/'"),
    ('test.py', ['configs/retinanet_pvt_small_fpn.py', 'missing.pth'], 'checkpoint not found: missing.pth'),
    ('train.py', ['configs/retinanet_pvt_small_fpn.py', '--resume', 'missing.pth'],
     'checkpoint to resume from not found: missing.pth'),
])
def test_cli_errors_are_one_line(tool, args, expected):
    proc = run_tool(f'tools/{tool}', *args, ok=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and 'Traceback' not in proc.stderr, proc.stderr


def test_missing_pretrained_file_is_one_line_with_the_fix(tmp_path, coco):
    """The backbone's init_cfg names a file that is not there: the error says where to put it."""
    config = write_user_config(tmp_path / 'cfg.py', 'retinanet_pvt_v2_b0_fpn.py', coco, iters=1)
    missing = tmp_path / 'checkpoints' / 'pvt_v2_b0.pth'
    config.write_text(config.read_text().replace(
        'init_cfg=None', f"init_cfg=dict(type='Pretrained', checkpoint='{missing}')"))
    proc = run_tool('tools/train.py', str(config), '--work-dir', str(tmp_path / 'work'), ok=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and 'init_cfg=None' in lines[0], proc.stderr[-2000:]


def _train_args(*argv: str):
    return load_tool('train').parse_args(list(argv))


def test_train_flags_shape_the_config(tmp_path, coco):
    from pvt_det.tools.train import prepare_train_config
    config = write_user_config(tmp_path / 'cfg.py', 'retinanet_pvt_tiny_fpn.py', coco)
    ckpt = tmp_path / 'some.pth'
    ckpt.write_bytes(b'')
    cfg = prepare_train_config(_train_args(
        str(config), '--work-dir', str(tmp_path / 'w'), '--amp', '--auto-scale-lr',
        '--resume', str(ckpt), '--cfg-options', 'train_dataloader.batch_size=1'))
    assert cfg.work_dir == str(tmp_path / 'w') and cfg.train_dataloader.batch_size == 1
    assert cfg.auto_scale_lr.enable is True and cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    import torch
    if not torch.cuda.is_available():
        assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    auto = prepare_train_config(_train_args(str(config), '--resume'))
    assert auto.resume is True and auto.load_from is None
    assert auto.work_dir == os.path.join('./work_dirs', 'cfg')


def test_scope_comes_from_the_config():
    from pvt_det.cli import ToolError
    from pvt_det.config.loading import load_config, task_of
    from pvt_det.tools.run_options import adapt_to_machine
    from pvt_det.config.preflight import check_dataset_paths
    det = load_config(REPO / 'configs/mask_rcnn_pvt_v2_b0_fpn.py')
    seg = load_config(REPO / 'configs/sem_fpn_pvt_v2_b0_ade20k.py')
    assert task_of(det) == 'det' and task_of(seg) == 'seg'
    with pytest.raises(ToolError, match='ADE20K layout'):
        check_dataset_paths(seg, ('train_dataloader',))
    seg.model.decode_head.norm_cfg = dict(type='SyncBN', requires_grad=True)
    import torch
    if not torch.cuda.is_available():  # SyncBN needs CUDA; gloo-distributed CPU runs use BN
        adapt_to_machine(seg)
        assert seg.model.decode_head.norm_cfg.type == 'BN'


def test_cpu_amp_wrapper_trains_in_bfloat16():
    import torch
    from mmengine.optim import build_optim_wrapper
    import pvt_det  # noqa: F401  (registers CPUAmpOptimWrapper)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    wrapper = build_optim_wrapper(model, dict(type='CPUAmpOptimWrapper', dtype='bfloat16',
                                              optimizer=dict(type='SGD', lr=0.1)))
    x = torch.randn(16, 8)
    before = model[0].weight.clone()
    with wrapper.optim_context(model):
        out = model(x)
    assert out.dtype == torch.bfloat16  # autocast really ran the linears in bfloat16
    wrapper.update_params(out.float().pow(2).mean())
    assert model[0].weight.dtype == torch.float32 and not torch.equal(before, model[0].weight)


def test_cpu_amp_runs_convs_on_maps_smaller_than_the_kernel_in_float32():
    """oneDNN's bfloat16 weight gradient of a 3x3 stride-2 conv on a 1x1 map (RetinaNet's P7 conv
    for a 64 px image) is NaN in about 3 of 4 runs on torch 2.13 (it reads uninitialised memory,
    so it cannot be reproduced deterministically). The guard runs such convs in float32."""
    import torch
    from pvt_det.engine.amp import guard_tiny_convs
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, stride=2, padding=1)
    guard_tiny_convs(conv)
    for _ in range(10):
        conv.weight.grad = None
        x = torch.relu(torch.randn(2, 64, 1, 1)).bfloat16().requires_grad_()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            tiny_out = conv(x)
            large_out = conv(torch.randn(2, 64, 8, 8))
            assert torch.is_autocast_enabled('cpu')  # restored after the tiny conv
        assert tiny_out.dtype == torch.float32 and large_out.dtype == torch.bfloat16
        tiny_out.sum().backward()
        assert torch.isfinite(conv.weight.grad).all()


# ----------------------------------------------------------------------------- slow: train + test
@pytest.mark.slow
@pytest.mark.parametrize('base', ['retinanet_pvt_tiny_fpn.py', 'mask_rcnn_pvt_tiny_fpn.py',
                                  'mask_rcnn_pvt_v2_b0_fpn.py'])
def test_train_checkpoint_then_test_prints_coco_ap(tmp_path, coco, base):
    config = write_user_config(tmp_path / 'cfg.py', base, coco, iters=4)
    work_dir = tmp_path / 'work'
    extra = ['--amp'] if base.startswith('retinanet') else []  # bfloat16 on CPU, float16 on CUDA
    run_tool('tools/train.py', str(config), '--work-dir', str(work_dir), *extra)
    losses = logged_losses(work_dir)
    assert len(losses) == 4 and losses[-1] < losses[0], losses  # the same batch each step: it learns
    checkpoint = work_dir / 'iter_4.pth'
    assert checkpoint.is_file()

    # RetinaNet also exercises flip test-time augmentation and drawing the predictions.
    extra = ['--tta', '--show-dir', 'vis'] if base.startswith('retinanet') else []
    proc = run_tool('tools/test.py', str(config), str(checkpoint), '--work-dir', str(work_dir),
                    '--out', str(tmp_path / 'preds.pkl'), *extra)
    metrics = printed_metrics(proc.stdout)
    assert 0.0 <= metrics['bbox_mAP'] <= 1.0, proc.stdout[-2000:]
    if base.startswith('mask_rcnn'):
        assert 0.0 <= metrics['segm_mAP'] <= 1.0
    assert (tmp_path / 'preds.pkl').stat().st_size > 0
    if extra:
        assert len(list(work_dir.glob('*/vis/*.jpg'))) == 2  # one drawing per val image

    if base == 'mask_rcnn_pvt_v2_b0_fpn.py':
        image = coco / 'val2017' / '000000000001.jpg'
        run_tool('tools/infer.py', str(image), str(config), str(checkpoint),
                 '--out-dir', str(tmp_path / 'infer'), '--score-thr', '0')
        result = json.loads((tmp_path / 'infer' / '000000000001_pred.json').read_text())
        first = result['predictions'][0]
        assert first['class'] in CLASSES and len(first['bbox']) == 4 and first['mask']['size'] == [64, 64]
        assert (tmp_path / 'infer' / '000000000001_pred.jpg').stat().st_size > 0


@pytest.mark.slow
def test_user_dataset_config_trains_and_tests(tmp_path):
    """A user's own COCO-format dataset: other folder and file names, other classes."""
    root = tmp_path / 'my_shapes'
    classes = ('disc', 'block')
    paths = make_coco_dataset(root, num_train=2, num_val=2, image_size=(64, 64), classes=classes, seed=2)
    (root / 'labels').mkdir()
    paths['train_ann'].rename(root / 'labels' / 'train.json')
    paths['val_ann'].rename(root / 'labels' / 'val.json')
    paths['train_images'].rename(root / 'train_imgs')
    paths['val_images'].rename(root / 'val_imgs')
    layout = dict(train_ann='labels/train.json', train_img='train_imgs/',
                  val_ann='labels/val.json', val_img='val_imgs/')
    config = write_user_config(tmp_path / 'my_retinanet.py', 'retinanet_pvt_v2_b0_fpn.py', root,
                               iters=4, classes=classes, layout=layout)
    work_dir = tmp_path / 'work'
    run_tool('tools/train.py', str(config), '--work-dir', str(work_dir))
    losses = logged_losses(work_dir)
    assert losses[-1] < losses[0], losses
    proc = run_tool('tools/test.py', str(config), str(work_dir / 'iter_4.pth'), '--work-dir', str(work_dir))
    assert 0.0 <= printed_metrics(proc.stdout)['bbox_mAP'] <= 1.0
    # The checkpoint carries the user's classes (what infer.py and the visualizer label with).
    import torch
    meta = torch.load(work_dir / 'iter_4.pth', map_location='cpu')['meta']
    assert tuple(meta['dataset_meta']['classes']) == classes
