"""tools/swap_backbone.py and pvt_det.config.swap (issue 21): what the leaf config says, what is refused in
one line with nothing written, the archs and checkpoints it knows, and the pre-flight fixes that came with it
(a neck override on a model without a neck, None values, folders the dataset never reads)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from mmengine.config import Config

from pvt_det.cli import ToolError

REPO = Path(__file__).resolve().parents[1]
RETINANET = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'


def swap(tmp_path: Path, capsys, source: str, arch: str = 'pvt_v2_b0', *options: str,
         ok: bool = True) -> tuple[str, Path]:
    """Run the tool in-process; returns (stdout or the one error line, DST)."""
    from pvt_det.tools.swap_backbone import main
    out = tmp_path / f'{arch}_{len(list(tmp_path.iterdir()))}.py'
    status = main([source, arch, '--out', str(out), *options])
    captured = capsys.readouterr()
    if ok:
        assert status == 0, captured.err
        return captured.out, out
    lines = captured.err.strip().splitlines()
    assert status == 1 and len(lines) == 1 and 'Traceback' not in captured.err, captured.err
    assert not out.exists() and not list(tmp_path.glob('.*swap-draft*'))  # nothing written
    return lines[0], out


@pytest.fixture(scope='module')
def retinanet(tmp_path_factory):
    from pvt_det.tools.swap_backbone import main
    out = tmp_path_factory.mktemp('swap') / 'retinanet_pvt_v2_b0.py'
    assert main([RETINANET, 'pvt_v2_b0', '--out', str(out)]) == 0
    return out


def test_leaf_says_only_what_changes_each_with_why(retinanet):
    text = retinanet.read_text()
    assert f"_base_ = '{RETINANET}'" in text
    # Each top-level key and each key of the model the leaf sets says why on its line.
    top = None
    for line in text.splitlines():
        if line.startswith(('#', '_base_', ')')) or not line.strip() or line.strip() == '),':
            continue
        depth = (len(line) - len(line.lstrip())) // 4
        top = line.split('=')[0].strip() if depth == 0 else top
        if depth == 0 and top != 'model' or depth == 1 and top == 'model':
            assert '  # ' in line, line
    cfg = Config.fromfile(str(retinanet))
    assert cfg.model.backbone.type == 'PVTv2' and cfg.model.backbone.arch == 'b0'
    assert 'depth' not in cfg.model.backbone and 'norm_eval' not in cfg.model.backbone  # _delete_ worked
    assert list(cfg.model.neck.in_channels) == [32, 64, 160, 256]
    assert cfg.model.backbone.init_cfg.checkpoint.endswith('/pvt_v2_b0.pth')
    assert cfg.optim_wrapper.optimizer.type == 'AdamW' and cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys.norm.decay_mult == 0
    assert cfg.auto_scale_lr.base_batch_size == 16  # kept from the source


def test_the_function_takes_and_returns_configs():
    from pvt_det.config.loading import load_config
    from pvt_det.config.swap import resolve_source, swap_backbone
    cfg = load_config(resolve_source(RETINANET))
    result = swap_backbone(cfg, 'pvt_small', base=RETINANET, keep_optimizer=True, pretrained='none')
    assert isinstance(result.config, Config)
    assert result.config.model.backbone.type == 'PVT' and result.config.model.backbone.init_cfg is None
    assert list(result.config.model.neck.in_channels) == [64, 128, 320, 512]
    assert result.config.optim_wrapper.optimizer.type == 'SGD'  # --keep-optimizer
    keys = [change.key for change in result.changes]
    assert keys == ['custom_imports', 'model.backbone', 'model.neck.in_channels']
    assert all(change.why for change in result.changes)
    assert 'optim_wrapper' not in result.text


def test_arch_names_come_from_the_registered_classifiers():
    from pvt_det.config.swap import backbone_names, imagenet_checkpoint
    from pvt_det.models.backbones.pvt import PVTv2
    from pvt_det.models.classifiers import classifier_names
    names = backbone_names()
    assert list(names) == classifier_names()
    assert names['pvt_v2_b2_li'] == ('PVTv2', 'b2_li') and names['cvt_13'] == ('CvT', '13')
    assert names['pvt_tiny'] == ('PVT', 'tiny')
    shipped = Config.fromfile(str(REPO / 'configs/_base_/models/pvt_backbones.py'))
    assert imagenet_checkpoint('pvt_v2_b2') == shipped.pvt_v2_b2_backbone.init_cfg.checkpoint
    assert imagenet_checkpoint('pvt_small') == shipped.pvt_small_backbone.init_cfg.checkpoint
    for arch in (a for a in PVTv2.arch_zoo if a.startswith('mit_')):  # SegFormer's, once registered
        assert names[arch] == ('PVTv2', arch)
        assert re.match(r'https://download\.openmmlab\.com/.*/mit_b\d_\d+-\w+\.pth$', imagenet_checkpoint(arch))


@pytest.mark.parametrize('source,expected', [
    ('mmdet::dcn/faster-rcnn_r50-dconv-c3-c5_fpn_1x_coco.py', 'model.backbone.dcn: deformable convolutions'),
    ('mmdet::faster_rcnn/faster-rcnn_r50-caffe_c4-1x_coco.py', "model.roi_head.shared_head (ResLayer) is ResNet's"),
    ('mmdet::empirical_attention/faster-rcnn_r50-attn0010_fpn_1x_coco.py', 'model.backbone.plugins:'),
    ('mmdet::tridentnet/tridentnet_r50-caffe_1x_coco.py', "model.backbone.type='TridentResNet'"),
], ids=['dcn', 'c4', 'plugins', 'trident'])
def test_no_faithful_equivalent_is_one_line_and_nothing_written(tmp_path, capsys, source, expected):
    line, _ = swap(tmp_path, capsys, source, ok=False)
    assert line.startswith('swap_backbone: error: ') and expected in line


def test_a_backbone_with_too_few_stages_is_refused(tmp_path, capsys):
    line, _ = swap(tmp_path, capsys, RETINANET, 'cvt_13', ok=False)
    assert 'model.backbone.out_indices=(0, 1, 2, 3)' in line and 'cvt_13 has 3 stages' in line


def test_a_package_name_mmengine_cannot_inherit_is_one_line(tmp_path, capsys):
    """mmdet's `gn+ws` folder: mmengine's `package::folder/file` pattern has no '+', so a leaf with
    `_base_ = 'mmdet::gn+ws/...'` could never be read; the tool says so and names the file to pass instead."""
    line, _ = swap(tmp_path, capsys, 'mmdet::gn+ws/mask-rcnn_r50_fpn_gn-ws-all_2x_coco.py', ok=False)
    assert 'mmengine cannot inherit a config by this name' in line and line.endswith(
        'gn+ws/mask-rcnn_r50_fpn_gn-ws-all_2x_coco.py')


def test_pretrained_file_missing_stops_before_writing(tmp_path, capsys):
    line, _ = swap(tmp_path, capsys, RETINANET, 'pvt_v2_b0', '--pretrained', str(tmp_path / 'nope.pth'),
                   ok=False)
    assert 'pretrained weights not found' in line and 'model.backbone.init_cfg.checkpoint' in line


def test_segformer_and_mit_swap_both_ways(tmp_path, capsys):
    """mmseg's SegFormer (MixVisionTransformer) gets a PVTv2 backbone; a detector gets MiT once registered."""
    from pvt_det.models.backbones.pvt import PVTv2
    printed, leaf = swap(tmp_path, capsys, 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
                         'pvt_v2_b1', '--pretrained', 'none')
    cfg = Config.fromfile(str(leaf))
    assert cfg.model.decode_head.type == 'SegformerHead'
    assert list(cfg.model.decode_head.in_channels) == [64, 128, 320, 512]
    assert 'in place of MixVisionTransformer' in printed
    if 'mit_b0' in PVTv2.arch_zoo:
        printed, leaf = swap(tmp_path, capsys, RETINANET, 'mit_b0')
        cfg = Config.fromfile(str(leaf))
        assert cfg.model.backbone.arch == 'mit_b0' and 'mit_b0' in cfg.model.backbone.init_cfg.checkpoint


# ------------------------------------------------------------------------------------------ pre-flight
def _mask2former(**model) -> Config:
    from pvt_det.config.loading import load_config, register_scope
    from pvt_det.config.swap import resolve_source
    cfg = load_config(resolve_source('mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py'))
    register_scope(cfg)
    cfg.merge_from_dict({f'model.{key}': value for key, value in model.items()})
    return cfg


def test_neck_override_on_a_model_without_a_neck_is_one_clear_line():
    from pvt_det.config.preflight import check_config
    cfg = _mask2former(neck=dict(in_channels=[64, 128, 320, 512]))
    with pytest.raises(ToolError) as error:
        check_config(cfg, ())
    line = str(error.value)
    assert '\n' not in line and line.startswith('model.neck has no type')
    assert 'Mask2Former has no neck' in line and 'model.panoptic_head.in_channels' in line


def test_pixel_decoder_inputs_are_checked():
    from pvt_det.config.preflight import check_config
    cfg = _mask2former(**{'panoptic_head.in_channels': [256, 512, 1024, 1024]})
    with pytest.raises(ToolError, match=re.escape('set model.panoptic_head.in_channels=[256, 512, 1024, 2048]')):
        check_config(cfg, ())


def test_dataset_folders_never_read_and_none_values(tmp_path):
    """An instance Mask2Former's CocoDataset names a seg folder its pipeline never opens; None is no path."""
    from pvt_det.config.preflight import check_config, check_dataset_paths
    from pvt_det.datasets.synthetic import make_coco_dataset
    make_coco_dataset(tmp_path, num_train=1, num_val=1, image_size=(32, 32))
    cfg = _mask2former()
    dataset = cfg.train_dataloader.dataset
    dataset.update(data_root=str(tmp_path) + '/', ann_file='annotations/instances_train2017.json',
                   data_prefix=dict(img='train2017/', seg='panoptic_train2017/'))
    check_dataset_paths(cfg, ('train_dataloader',))  # no LoadPanopticAnnotations: seg is never read
    dataset.data_prefix = dict(img='train2017/', seg=None)
    dataset.metainfo = None
    check_dataset_paths(cfg, ('train_dataloader',))
    dataset.pipeline = [dict(type='LoadPanopticAnnotations')]
    dataset.data_prefix = dict(img='train2017/', seg='panoptic_train2017/')
    with pytest.raises(ToolError, match=r'dataset folder not found: .*panoptic_train2017/ '
                                        r'\(train_dataloader\.dataset\.data_prefix\.seg\)'):
        check_dataset_paths(cfg, ('train_dataloader',))
    cfg.model.panoptic_head.num_things_classes = 80
    check_config(cfg, ())


def test_a_config_file_is_named_relative_to_the_leaf(tmp_path, capsys):
    source = REPO / 'configs' / 'retinanet_r50_fpn.py'  # pvt_det's ResNet-50 twin of retinanet_pvt_small_fpn
    printed, leaf = swap(tmp_path, capsys, str(source), 'pvt_v2_b2', '--keep-optimizer')
    base = re.search(r"^_base_ = '(.+)'$", leaf.read_text(), re.M).group(1)
    assert not Path(base).is_absolute() and (leaf.parent / base).resolve() == source.resolve()
    cfg = Config.fromfile(str(leaf))
    assert list(cfg.model.neck.in_channels) == [64, 128, 320, 512]
    assert 'optim_wrapper' not in leaf.read_text() and 'model.neck.in_channels = [64, 128, 320, 512]' in printed


def test_model_level_pretrained_of_a_resnet_segmentor_is_one_line():
    from mmengine.config import Config as MMConfig
    from pvt_det.config.preflight import check_config
    cfg = MMConfig(dict(default_scope='mmseg', model=dict(
        type='EncoderDecoder', pretrained='open-mmlab://resnet50_v1c',
        backbone=dict(type='PVTv2', arch='b0'))))
    with pytest.raises(ToolError, match=r"model\.pretrained='open-mmlab://resnet50_v1c' would be passed to "
                                        r"model\.backbone \(PVTv2\)"):
        check_config(cfg, ())
