"""Checks before training/testing (issue 15 §1): a config that disagrees with its dataset, its backbone or
its files stops tools/train.py and tools/test.py with one line naming the key or file, before a runner exists.

User-style configs inherit the shipped ones, as in tests/test_tools.py; the tools run in-process
(``main(argv)`` returns the exit status), and one test runs the real script.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from pvt_det.cli import ToolError
from pvt_det.datasets.synthetic import make_coco_dataset
from test_tools import CLASSES, write_user_config

REPO = Path(__file__).resolve().parents[1]
SKIP_HINT = "preflight = dict(skip=['{}'])"


@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('coco')
    make_coco_dataset(root, num_train=1, num_val=1, image_size=(64, 64), seed=3)
    return root


def user_config(tmp_path: Path, coco: Path, base: str = 'retinanet_pvt_v2_b0_fpn.py',
                extra: str = '') -> Path:
    """A user's config over a shipped one (3 classes, 64 px); with ``extra``, a config inheriting it
    that adds those lines (merged as mmengine merges a child config into its base)."""
    path = write_user_config(tmp_path / 'my_base.py', base, coco, iters=1)
    if not extra:
        return path
    child = tmp_path / 'my_config.py'
    child.write_text(f"_base_ = './{path.name}'\n{extra}")
    return child


def tool_error(capsys, tool: str, *argv: str) -> str:
    """Run tools/<tool>.py in-process; it must exit 1 with one line on stderr, which is returned."""
    import importlib
    status = importlib.import_module(f'pvt_det.tools.{tool}').main(list(argv))
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert status == 1 and len(lines) == 1 and 'Traceback' not in stderr, stderr
    return lines[0]


def train_error(capsys, config: Path, work_dir: Path, *options: str) -> str:
    line = tool_error(capsys, 'train', str(config), '--work-dir', str(work_dir),
                      *(['--cfg-options', *options] if options else []))
    assert not work_dir.exists()  # mmengine's Runner creates it: no runner, no data read, no step
    return line


def prepared(config: Path) -> Config:
    from pvt_det.tools.train import parse_args, prepare_train_config
    return prepare_train_config(parse_args([str(config), '--work-dir', str(config.parent / 'work')]))


def checked(cfg: Config, loaders: tuple[str, ...] = ('train_dataloader', 'val_dataloader')) -> str:
    """The one line check_config raises for an in-memory config."""
    from pvt_det.config.preflight import check_config
    with pytest.raises(ToolError) as error:
        check_config(cfg, loaders)
    message = str(error.value)
    assert '\n' not in message
    return message


def loaded(path: str | Path, *options: str) -> Config:
    from mmengine.config import DictAction
    from pvt_det.config.loading import load_config, register_scope
    overrides = {}
    for option in options:
        key, value = option.split('=', 1)
        overrides[key] = DictAction._parse_iterable(value)
    cfg = load_config(path, overrides)
    register_scope(cfg)
    return cfg


# ------------------------------------------------------------------------------------ class counts
def test_head_left_at_80_classes_for_a_3_class_dataset(tmp_path, capsys, coco):
    config = user_config(tmp_path, coco, extra='model = dict(bbox_head=dict(num_classes=80))\n')
    line = train_error(capsys, config, tmp_path / 'work')
    assert 'model.bbox_head.num_classes=80' in line and 'has 3 classes' in line
    assert 'set model.bbox_head.num_classes=3' in line and SKIP_HINT.format('num_classes') in line
    # The documented way through for a deliberate mismatch:
    config.write_text(config.read_text() + "preflight = dict(skip=['num_classes'])\n")
    assert prepared(config).model.bbox_head.num_classes == 80


def test_test_tool_checks_the_test_set_before_building_the_runner(tmp_path, capsys, coco):
    config = user_config(tmp_path, coco, extra='model = dict(bbox_head=dict(num_classes=80))\n')
    checkpoint = tmp_path / 'iter_1.pth'
    checkpoint.write_bytes(b'')
    line = tool_error(capsys, 'test', str(config), str(checkpoint), '--work-dir', str(tmp_path / 'work'))
    assert 'model.bbox_head.num_classes=80' in line and 'test_dataloader.dataset has 3 classes' in line
    assert not (tmp_path / 'work').exists()


def test_every_head_with_a_class_count_is_checked(tmp_path, coco):
    mask_rcnn = user_config(tmp_path, coco, 'mask_rcnn_pvt_v2_b0_fpn.py',
                            extra='model = dict(roi_head=dict(mask_head=dict(num_classes=80)))\n')
    with pytest.raises(ToolError, match=r'model\.roi_head\.mask_head\.num_classes=80 but '
                                        r'train_dataloader\.dataset has 3 classes'):
        prepared(mask_rcnn)
    # Cascade-style list of bbox heads (mmdet's Cascade R-CNN, Sparse R-CNN): each one by its index.
    cfg = loaded(user_config(tmp_path, coco, 'mask_rcnn_pvt_v2_b0_fpn.py'))
    head = cfg.model.roi_head.bbox_head
    cfg.model.roi_head.bbox_head = [head, head, dict(head, num_classes=80)]
    assert 'model.roi_head.bbox_head[2].num_classes=80' in checked(cfg)


@pytest.mark.parametrize('config,head', [
    ('cascade_mask_rcnn_pvt_v2_b2_fpn_3x.py', 'roi_head.bbox_head[2]'),
    ('sparse_rcnn_pvt_v2_b2_fpn_3x.py', 'roi_head.bbox_head[5]'),
    ('detr_pvt_small_50e.py', 'bbox_head'),
    ('deformable_detr_pvt_v2_b2.py', 'bbox_head'),
])
def test_zoo_detectors_heads_are_found(config, head):
    """The shipped config passes (COCO's 80 classes); one head changed to 3 classes is named."""
    from pvt_det.config.preflight import check_config
    cfg = loaded(REPO / 'configs' / config)
    check_config(cfg, ('train_dataloader',))
    node = cfg.model
    for part in head.replace(']', '').replace('[', '.').split('.'):
        node = node[int(part)] if part.isdigit() else node[part]
    node.num_classes = 3
    assert checked(cfg, ('train_dataloader',)).startswith(f'model.{head}.num_classes=3 but ')


def test_segmentation_head_against_the_dataset_class_default():
    """No metainfo in the config: the classes are ADE20KDataset's own 150, read without building it."""
    cfg = loaded(REPO / 'configs/sem_fpn_pvt_v2_b0_ade20k.py', 'model.decode_head.num_classes=4')
    line = checked(cfg, ('train_dataloader',))
    assert 'model.decode_head.num_classes=4' in line and "ADE20KDataset's default classes" in line
    assert 'has 150 classes' in line


# ------------------------------------------------------------------------------------ widths
def test_neck_widths_of_another_backbone(tmp_path, capsys, coco):
    config = user_config(tmp_path, coco, extra='model = dict(neck=dict(in_channels=[64, 128, 320, 512]))\n')
    line = train_error(capsys, config, tmp_path / 'work')
    assert 'model.neck.in_channels=[64, 128, 320, 512]' in line and "PVTv2(arch='b0')" in line
    assert 'set model.neck.in_channels=[32, 64, 160, 256]' in line


def test_neck_widths_of_a_backbone_without_out_channels():
    """mmdet's ResNet reports no widths: a forward pass of a meta tensor measures them."""
    cfg = loaded(REPO / 'configs/retinanet_r50_fpn.py', 'model.neck.in_channels=[64,128,320,512]')
    assert 'set model.neck.in_channels=[256, 512, 1024, 2048]' in checked(cfg, ('train_dataloader',))


def test_single_map_into_a_channel_mapper(tmp_path, coco):
    """DETR's layout: the last stage only, into a one-input ChannelMapper."""
    cfg = loaded(user_config(tmp_path, coco))
    cfg.model.backbone.out_indices = (3,)
    cfg.model.neck = dict(type='ChannelMapper', in_channels=[512], out_channels=256, num_outs=1)
    line = checked(cfg)
    assert 'model.neck.in_channels=[512]' in line and 'set model.neck.in_channels=[256]' in line


def test_mean_and_std_need_one_value_per_input_channel(tmp_path, coco):
    config = user_config(tmp_path, coco, extra='model = dict(data_preprocessor=dict(mean=[1, 2, 3, 4]))\n')
    with pytest.raises(ToolError, match=r'model\.data_preprocessor\.mean has 4 values but the backbone '
                                        r'takes 3-channel images'):
        prepared(config)


# ------------------------------------------------------------------------------------ strides, heads
@pytest.mark.parametrize('base,extra,expected', [
    ('retinanet_pvt_v2_b0_fpn.py',
     'model = dict(bbox_head=dict(anchor_generator=dict(strides=[4, 8, 16, 32, 64])))',
     'model.bbox_head.anchor_generator.strides=[4, 8, 16, 32, 64] but the head gets 5 maps'),
    ('retinanet_pvt_v2_b0_fpn.py', 'model = dict(neck=dict(num_outs=4))',
     'set model.bbox_head.anchor_generator.strides=[8, 16, 32, 64]'),
    ('mask_rcnn_pvt_v2_b0_fpn.py',
     'model = dict(roi_head=dict(bbox_roi_extractor=dict(featmap_strides=[8, 16, 32, 64])))',
     'set model.roi_head.bbox_roi_extractor.featmap_strides=[4, 8, 16, 32]'),
    ('retinanet_pvt_v2_b0_fpn.py', 'model = dict(bbox_head=dict(in_channels=128))',
     'model.bbox_head.in_channels=128 but the neck (FPN, num_outs=5) gives 5 maps of 256 channels'),
], ids=['anchor-strides', 'anchor-count', 'roi-strides', 'head-width'])
def test_heads_against_the_neck_outputs(tmp_path, coco, base, extra, expected):
    with pytest.raises(ToolError, match=re.escape(expected)):
        prepared(user_config(tmp_path, coco, base, extra=extra + '\n'))


@pytest.mark.parametrize('options,expected', [
    (['model.decode_head.in_index=[0,1,2,4]'], 'model.decode_head.in_index=[0, 1, 2, 4] but the neck'),
    (['model.decode_head.in_channels=[256,256,256,128]'],
     'set model.decode_head.in_channels=[256, 256, 256, 256]'),
    (['model.decode_head.feature_strides=[4,8,16,16]'],
     'set model.decode_head.feature_strides=[4, 8, 16, 32]'),
], ids=['in-index', 'in-channels', 'feature-strides'])
def test_decode_head_against_the_neck_outputs(options, expected):
    cfg = loaded(REPO / 'configs/sem_fpn_pvt_v2_b0_ade20k.py', *options)
    assert expected in checked(cfg, ('train_dataloader',))


# ------------------------------------------------------------------------------------ annotation files
def test_annotation_file_that_is_not_json(tmp_path, capsys, coco):
    image = 'train2017/000000000001.jpg'
    line = train_error(capsys, user_config(tmp_path, coco), tmp_path / 'work',
                       f'train_dataloader.dataset.ann_file={image}')
    assert f'{coco}/{image}' in line and '(train_dataloader.dataset.ann_file)' in line
    assert 'not a text file' in line and 'COCO instances JSON' in line


@pytest.mark.parametrize('content,expected', [
    ('[]', "does not hold a JSON object (it starts with '[]')"),
    ('{"images": [], "annotations": [', 'is not valid JSON: Expecting value at line 1'),
    ('{"images": [], "annotations": []}', "is JSON but not COCO: no list 'categories'"),
], ids=['list', 'truncated', 'no-categories'])
def test_annotation_file_that_is_not_coco(tmp_path, coco, content, expected):
    broken = tmp_path / 'broken.json'
    broken.write_text(content)
    cfg = loaded(user_config(tmp_path, coco))
    cfg.train_dataloader.dataset.ann_file = str(broken)
    line = checked(cfg)
    assert line.startswith(f'{broken} (train_dataloader.dataset.ann_file) ') and expected in line


def test_large_annotation_file_is_sniffed_not_parsed(tmp_path, coco, monkeypatch):
    """Over the size limit (COCO train2017 is 450 MB), only the start is decoded and the categories are read
    from the end of the file, where COCO writes them."""
    from pvt_det.config import preflight
    monkeypatch.setattr(preflight, '_FULL_PARSE_BYTES', 64)
    monkeypatch.setattr(preflight, '_TAIL_BYTES', 1024)
    source = json.loads((coco / 'annotations' / 'instances_train2017.json').read_text())
    large = tmp_path / 'large.json'
    large.write_text(json.dumps(dict(images=source['images'] * 50, annotations=source['annotations'] * 50,
                                     categories=source['categories'])))
    assert large.stat().st_size > 4 * 1024
    names = [c['name'] for c in preflight._coco_categories(str(large), 'key', 'CocoDataset', True)]
    assert names == list(CLASSES)
    binary = tmp_path / 'large.pkl'
    binary.write_bytes(b'\x80\x04' + bytes(range(256)) * 4)
    with pytest.raises(ToolError, match=r'large\.pkl \(key\) is not a text file \(byte 0x80 at offset 0'):
        preflight._coco_categories(str(binary), 'key', 'CocoDataset', True)


def test_classes_must_be_categories_of_the_file_in_its_order(tmp_path, coco):
    wrong = user_config(tmp_path, coco)
    wrong.write_text(wrong.read_text().replace(repr(CLASSES), repr(('square', 'disc', 'triangle'))))
    with pytest.raises(ToolError, match=r"1 of the 3 classes "
                                        r"\(train_dataloader\.dataset\.metainfo\.classes\) are not categories of .*instances_train2017\.json: 'disc'"):
        prepared(wrong)
    reordered = user_config(tmp_path, coco)
    reordered.write_text(reordered.read_text().replace(repr(CLASSES), repr(tuple(reversed(CLASSES)))))
    with pytest.raises(ToolError,
                       match=r"in another order .*metainfo\.classes=\('square', 'circle', 'triangle'\)"):
        prepared(reordered)
    # No metainfo: CocoDataset's 80 default classes are not the file's 3 categories.
    cfg = loaded(user_config(tmp_path, coco))
    for loader in ('train_dataloader', 'val_dataloader'):
        del cfg[loader].dataset['metainfo']
    line = checked(cfg)
    assert "80 of the 80 classes (CocoDataset's default classes" in line and 'the file has 3' in line


# ------------------------------------------------------------------------------------ other keys
@pytest.mark.parametrize('extra,expected', [
    ("load_from = '{tmp}/coco_trained.pth'",
     'checkpoint to start from not found: {tmp}/coco_trained.pth (load_from)'),
    ("val_evaluator = dict(ann_file='{coco}/annotations/instances_train2017.json')",
     "val_evaluator.ann_file='{coco}/annotations/instances_train2017.json' "
     "is not the file val_dataloader.dataset"),
    ('train_dataloader = dict(batch_size=0)', 'train_dataloader.batch_size=0'),
    ("preflight = dict(skip=['num_class'])", "preflight.skip names unknown check(s) ['num_class']"),
], ids=['load-from', 'evaluator-file', 'batch-size', 'unknown-skip'])
def test_other_config_mistakes(tmp_path, capsys, coco, extra, expected):
    config = user_config(tmp_path, coco, extra=extra.format(tmp=tmp_path, coco=coco) + '\n')
    line = train_error(capsys, config, tmp_path / 'work')
    assert expected.format(tmp=tmp_path, coco=coco) in line


def test_mask_head_without_mask_annotations(tmp_path, coco):
    config = user_config(tmp_path, coco, 'mask_rcnn_pvt_v2_b0_fpn.py')
    text = config.read_text()
    config.write_text(text.replace('with_mask=True', 'with_mask=False', 1))  # the train pipeline's
    with pytest.raises(ToolError, match=r'model\.roi_head\.mask_head learns from masks but '
                                        r'train_dataloader\.dataset\.pipeline\[1\] is LoadAnnotations'):
        prepared(config)


def test_pretrained_file_missing_anywhere_in_the_model(tmp_path, coco):
    missing = tmp_path / 'fpn.pth'
    cfg = loaded(user_config(tmp_path, coco))
    cfg.model.neck.init_cfg = [dict(type='Xavier', layer='Conv2d'),
                               dict(type='Pretrained', checkpoint=str(missing))]
    line = checked(cfg)
    assert f'pretrained weights not found: {missing} (model.neck.init_cfg[1].checkpoint)' in line
    assert '--cfg-options model.neck.init_cfg=None' in line


def test_shipped_detector_configs_pass(tmp_path, coco):
    """No false alarm on what we ship: each family's config on the generated data (3 classes)."""
    for base in ('mask_rcnn_pvt_v2_b0_fpn.py', 'retinanet_cvt_13_fpn.py'):  # RetinaNet-PVTv2: above
        assert prepared(user_config(tmp_path, coco, base)).model.backbone.init_cfg is None


# ------------------------------------------------------------------------------------ the real script
def test_real_script_exits_1_with_one_line(tmp_path, coco):
    config = user_config(tmp_path, coco, extra='model = dict(bbox_head=dict(num_classes=80))\n')
    proc = subprocess.run([sys.executable, 'tools/train.py', str(config), '--work-dir',
                           str(tmp_path / 'work')], cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith('train: error: model.bbox_head.num_classes=80')
    assert not (tmp_path / 'work').exists()
