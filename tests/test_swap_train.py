"""Swapped by tools/swap_backbone.py, mmdet's and mmseg's own configs train through tools/train.py and
evaluate through tools/test.py on generated data (issue 21): FCOS (caffe: ImageNet normalisation after the
swap), YOLOF (one C5 map into DilatedEncoder), Mask2Former (instance; no neck, the pixel decoder reads the
backbone), PSPNet (dilated ResNet read through in_index) and UPerNet. Each trains 2 iterations of two 64 px
images with pvt_v2_b0 from scratch (no download); a user config inherits the written leaf and says only the
data, the class count and the run length.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from mmengine.config import Config

from pvt_det.datasets.synthetic import SHAPE_CLASSES, make_ade20k_dataset, make_coco_dataset
from helpers import seg_64px_config

ITERS = 2
IMAGENET_MEAN = [123.675, 116.28, 103.53]


@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('swap_coco')
    make_coco_dataset(root, num_train=2, num_val=2, image_size=(64, 64), seed=7)
    return root


@pytest.fixture(scope='module')
def ade(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('swap_ade')
    make_ade20k_dataset(root, num_train=2, num_val=2, image_size=(64, 64), seed=7)
    return root


def swapped(tmp_path: Path, source: str) -> Path:
    from pvt_det.tools.swap_backbone import main
    out = tmp_path / 'swapped.py'
    assert main([source, 'pvt_v2_b0', '--out', str(out), '--pretrained', 'none']) == 0
    return out


n = len(SHAPE_CLASSES)
DET_HEADS = {
    'fcos': f'bbox_head=dict(num_classes={n}), test_cfg=dict(score_thr=0.0)',
    'yolof': f'bbox_head=dict(num_classes={n}), test_cfg=dict(score_thr=0.0)',
    'mask2former': (f'panoptic_head=dict(num_things_classes={n}, num_stuff_classes=0, num_queries=20, '
                    f'loss_cls=dict(class_weight=[1.0] * {n} + [0.1])), '
                    f'panoptic_fusion_head=dict(num_things_classes={n}, num_stuff_classes=0), '
                    'test_cfg=dict(max_per_image=20)'),
}
DET_SOURCES = {
    'fcos': 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    'yolof': 'mmdet::yolof/yolof_r50-c5_8xb8-1x_coco.py',
    'mask2former': 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
}
SEG_SOURCES = {
    'pspnet': 'mmseg::pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py',
    'upernet': 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py',
}


def det_user_config(tmp_path: Path, leaf: Path, coco: Path, name: str) -> Path:
    from test_tools import USER_CONFIG
    text = USER_CONFIG.format(
        base=leaf, data_root=coco, classes=SHAPE_CLASSES, masks=name == 'mask2former', iters=ITERS,
        head=DET_HEADS[name], train_ann='annotations/instances_train2017.json', train_img='train2017/',
        val_ann='annotations/instances_val2017.json', val_img='val2017/')
    # The swapped configs' schedules are epoch-based with warm-up; the template's is 2 iterations.
    text += 'model.update(data_preprocessor=dict(batch_augments=None))\n' if name == 'mask2former' else ''
    text += f"visualizer = dict(name='vis_swap_{name}')\n"  # mmengine keeps one visualizer per name per process
    path = tmp_path / f'my_{name}.py'
    path.write_text(text)
    return path


def train_and_test(tmp_path: Path, config: Path, capsys) -> tuple[list[float], dict]:
    from pvt_det.tools import test as test_tool, train as train_tool
    from test_tools import logged_losses, printed_metrics
    work_dir = tmp_path / 'work'
    assert train_tool.main([str(config), '--work-dir', str(work_dir)]) == 0
    losses = logged_losses(work_dir)
    assert len(losses) == ITERS and all(math.isfinite(loss) for loss in losses), losses
    checkpoint = work_dir / f'iter_{ITERS}.pth'
    capsys.readouterr()
    assert test_tool.main([str(config), str(checkpoint), '--work-dir', str(tmp_path / 'test')]) == 0
    metrics = printed_metrics(capsys.readouterr().out)
    assert metrics, 'tools/test.py printed no metric'
    return losses, metrics


@pytest.mark.slow
@pytest.mark.parametrize('name', list(DET_SOURCES))
def test_swapped_mmdet_config_trains_and_tests(tmp_path, coco, name, capsys):
    leaf = swapped(tmp_path, DET_SOURCES[name])
    written = Config.fromfile(str(leaf))
    assert written.model.backbone.type == 'PVTv2'
    # FCOS-caffe and YOLOF read caffe/BGR inputs with ResNet; PVT's weights expect ImageNet RGB.
    assert list(written.model.data_preprocessor.mean) == IMAGENET_MEAN
    assert written.model.data_preprocessor.bgr_to_rgb is True
    config = det_user_config(tmp_path, leaf, coco, name)
    _, metrics = train_and_test(tmp_path, config, capsys)
    assert 'bbox_mAP' in metrics or 'coco/bbox_mAP' in metrics, metrics


@pytest.mark.slow
@pytest.mark.parametrize('name', list(SEG_SOURCES))
def test_swapped_mmseg_config_trains_and_tests(tmp_path, ade, name, capsys):
    leaf = swapped(tmp_path, SEG_SOURCES[name])
    written = Config.fromfile(str(leaf))
    assert written.model.backbone.type == 'PVTv2' and written.model.pretrained is None
    config = tmp_path / f'my_{name}.py'
    # mmseg's models name their preprocessor in the model dict: 64 px batches, no 512 px padding.
    config.write_text(seg_64px_config('data_preprocessor = dict(size=(64, 64))\n').format(
        base=str(leaf), data_root=str(ade), iters=ITERS) + f"visualizer = dict(name='vis_swap_{name}')\n")
    _, metrics = train_and_test(tmp_path, config, capsys)
    assert 'mIoU' in metrics, metrics
