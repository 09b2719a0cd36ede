"""Every way a dataset can be unusable stops tools/train.py before training with one line naming the file or
key and what to do (issue 24): no images, listed images that are not there, an image that does not decode, a
file that cannot be read, no annotation the model can learn from; for ADE20K-layout data, no images and no
label maps. Missing paths and files that are not COCO JSON are tests/test_preflight.py's."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from helpers import seg_64px_config
from pvt_det.cli import ToolError
from pvt_det.datasets.synthetic import make_ade20k_dataset, make_coco_dataset
from test_tools import write_user_config

REPO = Path(__file__).resolve().parents[1]
TRAIN_ANN = 'annotations/instances_train2017.json'


@pytest.fixture(scope='module')
def coco_source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('coco')
    make_coco_dataset(root, num_train=2, num_val=1, image_size=(64, 64), seed=5)
    return root


@pytest.fixture
def coco(tmp_path, coco_source) -> Path:
    """A copy each test may break."""
    return Path(shutil.copytree(coco_source, tmp_path / 'coco'))


@pytest.fixture(scope='module')
def ade_source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('ade')
    make_ade20k_dataset(root, num_train=2, num_val=1, image_size=(64, 64), seed=5)
    return root


def prepare(config: Path) -> None:
    from pvt_det.tools.train import parse_args, prepare_train_config
    prepare_train_config(parse_args([str(config), '--work-dir', str(config.parent / 'work')]))


def refused(config: Path) -> str:
    with pytest.raises(ToolError) as error:
        prepare(config)
    message = str(error.value)
    assert '\n' not in message
    return message


def edit_json(path: Path, edit) -> None:
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


def det_config(tmp_path: Path, coco: Path) -> Path:
    return write_user_config(tmp_path / 'my_det.py', 'retinanet_pvt_v2_b0_fpn.py', coco, iters=1)


def test_intact_dataset_passes(tmp_path, coco):
    prepare(det_config(tmp_path, coco))


def test_annotation_file_without_images(tmp_path, capsys, coco):
    edit_json(coco / TRAIN_ANN, lambda content: content.update(images=[], annotations=[]))
    from pvt_det.tools.train import main
    assert main([str(det_config(tmp_path, coco)), '--work-dir', str(tmp_path / 'work')]) == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith('train: error: dataset is empty: ') and str(coco / TRAIN_ANN) in line, line
    assert 'train_dataloader.dataset.ann_file' in line and '\n' not in line
    assert not (tmp_path / 'work').exists()


def test_listed_images_that_are_not_in_the_folder(tmp_path, coco):
    first, second = sorted((coco / 'train2017').iterdir())
    first.unlink()
    message = refused(det_config(tmp_path, coco))
    assert f'1 of the 2 images listed in {coco / TRAIN_ANN} are not in' in message
    assert repr(first.name) in message and 'train_dataloader.dataset.data_prefix.img' in message
    second.unlink()
    message = refused(det_config(tmp_path, coco))
    assert 'none of the 2 images listed' in message and 'Point train_dataloader.dataset.data_prefix.img' in message


def test_image_that_does_not_decode(tmp_path, coco):
    images = json.loads((coco / TRAIN_ANN).read_text())['images']
    broken = coco / 'train2017' / images[0]['file_name']
    broken.write_bytes(b'\x00' * 10)
    message = refused(det_config(tmp_path, coco))
    assert message.startswith(f'cannot decode {broken}') and 'not an image file' in message


def test_unreadable_annotation_file(tmp_path, coco, monkeypatch):
    """chmod cannot take read access from root (this suite may run as root): os.access is what is asked."""
    path = str(coco / TRAIN_ANN)
    real_access = os.access
    monkeypatch.setattr(os, 'access', lambda target, mode: target != path and real_access(target, mode))
    message = refused(det_config(tmp_path, coco))
    assert message.startswith(f'cannot read annotation file {path}: permission denied')


@pytest.mark.parametrize('break_annotations,expected', [
    (lambda anns: [ann.update(iscrowd=1) for ann in anns], 'none of its'),
    (lambda anns: [ann.update(bbox=[1, 1, 0, 5]) for ann in anns], 'none of its'),
    (lambda anns: anns.clear(), 'none of its 0 annotations'),
])
def test_no_annotation_the_model_can_learn_from(tmp_path, coco, break_annotations, expected):
    edit_json(coco / TRAIN_ANN, lambda content: break_annotations(content['annotations']))
    message = refused(det_config(tmp_path, coco))
    assert message.startswith(f'no usable annotation in {coco / TRAIN_ANN} (train_dataloader.dataset.ann_file)')
    assert expected in message and 'train_dataloader.dataset.metainfo.classes' in message


def test_images_smaller_than_min_size(tmp_path, coco):
    child = tmp_path / 'min_size.py'
    child.write_text(f"_base_ = './{det_config(tmp_path, coco).name}'\n"
                     'train_dataloader = dict(dataset=dict(filter_cfg=dict(min_size=100)))\n')
    message = refused(child)
    assert 'smaller than train_dataloader.dataset.filter_cfg.min_size=100 px' in message


def seg_config(tmp_path: Path, data_root: Path) -> Path:
    path = tmp_path / 'my_seg.py'
    path.write_text(seg_64px_config().format(base=str(REPO / 'configs' / 'sem_fpn_pvt_v2_b0_ade20k.py'),
                                             data_root=f'{data_root}/', iters=1))
    return path


def test_segmentation_folders(tmp_path, ade_source):
    ade = Path(shutil.copytree(ade_source, tmp_path / 'ade'))
    config = seg_config(tmp_path, ade)
    prepare(config)
    maps = sorted((ade / 'annotations' / 'training').iterdir())
    maps[0].unlink()
    message = refused(config)
    assert '1 of the 2 images in' in message and 'train_dataloader.dataset.data_prefix.seg_map_path' in message
    maps[1].unlink()
    message = refused(config)
    assert message.startswith('no usable annotation: none of the 2 images in')
    for image in (ade / 'images' / 'training').iterdir():
        image.rename(image.with_suffix('.png'))
    message = refused(config)
    assert message.startswith(f"dataset is empty: no *.jpg image in {ade / 'images' / 'training'}")
    assert 'set train_dataloader.dataset.img_suffix' in message
