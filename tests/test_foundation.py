"""The stack itself: imports, dual registration, the torch.load compat fix, and an mmdet
train -> checkpoint -> resume -> COCO evaluation round trip on generated data."""
import json
import subprocess
import sys

import pytest
import torch

import pvt_det
from pvt_det.datasets.synthetic import make_coco_dataset


def test_stack_imports_with_compiled_ops():
    import mmdet
    import mmseg
    from mmcv.ops import RoIAlign, nms

    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [50., 50., 60., 60.]])
    kept, _ = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert kept.shape[0] == 2  # the compiled op really ran and suppressed the overlapping box
    assert RoIAlign((7, 7), 1.0)(torch.rand(1, 4, 16, 16), torch.tensor([[0., 0., 0., 8., 8.]])).shape == (1, 4, 7, 7)
    assert mmdet.__version__ == '3.3.0' and mmseg.__version__ == '1.2.2'


def _save_mmengine_style_checkpoint(path):
    """What mmengine's runner writes into `message_hub`: pickled HistoryBuffer objects."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('pvt_det_compat_test')
    hub.update_scalar('train/loss', 1.5)
    torch.save(dict(meta=dict(epoch=1), state_dict={}, message_hub=hub.state_dict()), path)


def test_torch_load_of_mmengine_checkpoint_needs_and_gets_the_compat_fix(tmp_path):
    path = tmp_path / 'ckpt.pth'
    _save_mmengine_style_checkpoint(path)
    # Without pvt_det: torch's default weights_only=True refuses mmengine's classes.
    bare = subprocess.run([sys.executable, '-c', f'import torch; torch.load({str(path)!r})'],
                          capture_output=True, text=True)
    assert bare.returncode != 0 and 'HistoryBuffer' in bare.stderr
    # With pvt_det imported in a fresh process, where mmengine has not yet registered HistoryBuffer's
    # statistics methods (tools/test.py loading a checkpoint), the allow-listed classes load.
    fresh = subprocess.run([sys.executable, '-c', f'import pvt_det, torch; torch.load({str(path)!r})'],
                           capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    # And in this process, still with weights_only.
    loaded = torch.load(path)
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 1.5


def test_compat_fix_stays_narrow(tmp_path):
    import collections
    # An arbitrary class is still refused ...
    import fractions
    path = tmp_path / 'fraction.pth'
    torch.save({'x': fractions.Fraction(1, 3)}, path)
    with pytest.raises(Exception, match='Fraction'):
        torch.load(path)
    # ... and the getattr stand-in resolves nothing but HistoryBuffer's statistics methods:
    # OrderedDict is allow-listed, yet getattr(OrderedDict, 'fromkeys') must not come back.
    path = tmp_path / 'getattr.pth'
    torch.save({'f': collections.OrderedDict.fromkeys}, path)
    with pytest.raises(Exception, match='only allows the statistics methods'):
        torch.load(path)


def test_backbones_registered_in_both_registries():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    for name in ('PVT', 'PVTv2', 'CvT'):
        backbone = DET.get(name)
        assert backbone is not None and backbone.__module__.startswith('pvt_det.'), name
        assert SEG.get(name) is backbone


def _tiny_retinanet_cfg(data_root, work_dir, max_iters):
    from mmengine.config import Config
    ann = 'annotations/instances_{}2017.json'
    pipeline_train = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                      dict(type='Resize', scale=(96, 96), keep_ratio=True), dict(type='PackDetInputs')]
    pipeline_test = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(96, 96), keep_ratio=True),
                     dict(type='LoadAnnotations', with_bbox=True),
                     dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                           'scale_factor'))]
    metainfo = dict(classes=('square', 'circle', 'triangle'))

    def loader(split, pipeline, shuffle):
        return dict(batch_size=2, num_workers=0, persistent_workers=False,
                    sampler=dict(type='DefaultSampler', shuffle=shuffle),
                    dataset=dict(type='CocoDataset', data_root=str(data_root), metainfo=metainfo,
                                 ann_file=ann.format(split), data_prefix=dict(img=f'{split}2017/'),
                                 pipeline=pipeline, filter_cfg=dict(filter_empty_gt=False)))

    return Config(dict(
        default_scope='mmdet', work_dir=str(work_dir), randomness=dict(seed=0),
        model=dict(
            type='RetinaNet',
            data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.7, 116.3, 103.5],
                                   std=[58.4, 57.1, 57.4], bgr_to_rgb=True, pad_size_divisor=32),
            backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(1, 2, 3),
                          norm_cfg=dict(type='BN'), style='pytorch'),
            neck=dict(type='FPN', in_channels=[128, 256, 512], out_channels=32, start_level=0,
                      add_extra_convs='on_input', num_outs=5),
            bbox_head=dict(type='RetinaHead', num_classes=3, in_channels=32, stacked_convs=1,
                           feat_channels=32,
                           anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                                 scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                                 strides=[8, 16, 32, 64, 128]),
                           bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                                           target_stds=[1.0, 1.0, 1.0, 1.0]),
                           loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                         loss_weight=1.0),
                           loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
            train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                                         min_pos_iou=0, ignore_iof_thr=-1),
                           sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1,
                           debug=False),
            test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.0,
                          nms=dict(type='nms', iou_threshold=0.5), max_per_img=50)),
        train_dataloader=loader('train', pipeline_train, True),
        val_dataloader=loader('val', pipeline_test, False),
        val_evaluator=dict(type='CocoMetric', ann_file=str(data_root / ann.format('val')), metric='bbox'),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10_000),
        val_cfg=dict(type='ValLoop'),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        log_level='WARNING'))


@pytest.mark.slow
def test_train_checkpoint_resume_and_coco_eval(tmp_path):
    """The resume path that torch>=2.6 broke (UnpicklingError on HistoryBuffer), end to end."""
    from mmengine.runner import Runner
    data_root = tmp_path / 'coco'
    make_coco_dataset(data_root, num_train=4, num_val=2, image_size=(96, 96))
    work_dir = tmp_path / 'work'

    first = Runner.from_cfg(_tiny_retinanet_cfg(data_root, work_dir, max_iters=2))
    first.train()
    assert (work_dir / 'iter_2.pth').exists()
    first_losses = first.message_hub.get_scalar('train/loss').data[0]

    cfg = _tiny_retinanet_cfg(data_root, work_dir, max_iters=4)
    cfg.resume = True  # picks work_dir/last_checkpoint -> iter_2.pth
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 4
    # The message hub came back from the checkpoint: the two pre-resume losses are still in the log.
    losses = resumed.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 4 and list(losses[:2]) == list(first_losses)

    metrics = resumed.val_loop.run()
    assert 'coco/bbox_mAP' in metrics and 0.0 <= metrics['coco/bbox_mAP'] <= 1.0


def test_generated_coco_dataset_is_valid_coco(tmp_path):
    from pycocotools.coco import COCO
    paths = make_coco_dataset(tmp_path, num_train=3, num_val=2, image_size=(64, 80))
    coco = COCO(str(paths['train_ann']))
    assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds()) >= 3
    ann = coco.loadAnns(coco.getAnnIds())[0]
    x, y, w, h = ann['bbox']
    assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 80 and y + h <= 64
    mask = coco.annToMask(ann)
    assert mask.shape == (64, 80) and mask.sum() > 0.5 * ann['area']
    assert json.loads(paths['val_ann'].read_text())['categories'][0]['name'] == 'square'
