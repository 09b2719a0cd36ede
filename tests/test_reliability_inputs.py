"""Every bad input of issue 8 gives a clear error: the exception type, and a message that names the
offending value or path. CLI tools print one line and exit non-zero instead of a traceback."""
from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pvt_det  # noqa: F401
from pvt_det.models.backbones.cvt import CvT
from pvt_det.models.backbones.pvt import PVT, PVTv2
from pvt_det.models.checkpoint import CheckpointError

REPO = Path(__file__).resolve().parents[1]
# Small variants keep construction cheap; they share the code paths of the larger ones.
BACKBONES = [
    pytest.param(PVT, 'tiny', 4, id='PVT'),
    pytest.param(PVTv2, 'b0', 4, id='PVTv2'),
    pytest.param(CvT, '13', 3, id='CvT')
]


# ------------------------------------------------------------------------------ constructors
@pytest.mark.parametrize('cls,arch,stages', BACKBONES)
def test_unknown_arch(cls, arch, stages):
    with pytest.raises(ValueError, match=r"arch 'huge'.*valid archs: \[.*'" + arch + "'"):
        cls(arch='huge')


@pytest.mark.parametrize('cls,arch,stages', BACKBONES)
def test_out_indices_out_of_range(cls, arch, stages):
    with pytest.raises(ValueError,
                       match=rf'out_indices=\(0, {stages}\) is out of range.*0\.\.{stages - 1}'):
        cls(arch=arch, out_indices=(0, stages))


@pytest.mark.parametrize('cls,arch,stages', BACKBONES)
def test_frozen_stages_out_of_range(cls, arch, stages):
    with pytest.raises(ValueError,
                       match=rf'frozen_stages={stages} is out of range.*up to {stages - 1}'):
        cls(arch=arch, frozen_stages=stages)


@pytest.mark.parametrize('cls,arch,stages', BACKBONES)
@pytest.mark.parametrize('in_channels', [0, -3, 2.5, '3'])
def test_bad_in_channels(cls, arch, stages, in_channels):
    with pytest.raises((ValueError, TypeError), match=rf'in_channels={in_channels!r}'):
        cls(arch=arch, in_channels=in_channels)


# ------------------------------------------------------------------------------ forward
@pytest.fixture(scope='module')
def backbones():
    return {
        cls.__name__: cls(arch=arch).eval()
        for cls, arch in [(PVT, 'tiny'), (PVTv2, 'b0'), (CvT, '13')]
    }


@pytest.mark.parametrize('name', ['PVT', 'PVTv2', 'CvT'])
def test_forward_rejects_non_4d_input(backbones, name):
    with pytest.raises(ValueError,
                       match=r'expects an \(N, C, H, W\) image tensor, got \(3, 64, 64\)'):
        backbones[name](torch.zeros(3, 64, 64))


@pytest.mark.parametrize('name', ['PVT', 'PVTv2', 'CvT'])
def test_forward_rejects_wrong_channel_count(backbones, name):
    with pytest.raises(ValueError,
                       match=r'in_channels=3 but the input has 1 channels.*pass in_channels=1'):
        backbones[name](torch.zeros(1, 1, 64, 64))


@pytest.mark.parametrize('name', ['PVT', 'PVTv2', 'CvT'])
def test_forward_rejects_too_small_image(backbones, name):
    backbone = backbones[name]
    size = backbone.min_input_size - 1
    with pytest.raises(
            ValueError, match=rf'input of {size}x{size + 8} pixels is too small.*at least '
            rf'{backbone.min_input_size}'):
        backbone(torch.zeros(1, 3, size, size + 8))
    backbone(torch.zeros(1, 3, backbone.min_input_size,
                         backbone.min_input_size))  # the minimum works


# ------------------------------------------------------------------------------ checkpoint loading
def pretrained(cls, arch, checkpoint):
    backbone = cls(arch=arch, init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint)))
    backbone.init_weights()
    return backbone


def test_missing_checkpoint_file(tmp_path):
    missing = tmp_path / 'pvt_v2_b0.pth'
    with pytest.raises(FileNotFoundError,
                       match=rf'checkpoint file not found: {missing}.*init_cfg=None'):
        pretrained(PVTv2, 'b0', missing)


def test_corrupt_checkpoint_file(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(PVTv2(arch='b0').state_dict(), good)
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])  # an interrupted download
    with pytest.raises(CheckpointError, match=rf'cannot read checkpoint {corrupt}.*truncated'):
        pretrained(PVTv2, 'b0', corrupt)


def test_checkpoint_of_another_arch(tmp_path):
    b1 = tmp_path / 'pvt_v2_b1.pth'
    torch.save(PVTv2(arch='b1').state_dict(), b1)
    with pytest.raises(CheckpointError) as error:
        pretrained(PVTv2, 'b0', b1)
    message = str(error.value)
    assert str(b1) in message
    # Names a mismatching key with both shapes (b1 is 64 wide where b0 is 32).
    assert re.search(r'stages\.0\.\S+: checkpoint \(\d+, 64\) vs model \(\d+, 32\)',
                     message), message


def test_checkpoint_of_another_model(tmp_path):
    cvt = tmp_path / 'cvt_13.pth'
    torch.save(CvT(arch='13').state_dict(), cvt)
    with pytest.raises(CheckpointError) as error:
        pretrained(PVTv2, 'b0', cvt)
    message = str(error.value)
    assert str(cvt) in message and 'is not a' in message and 'stages.' in message, message


def test_pvt_v1_checkpoint_into_pvt_v2(tmp_path):
    v1 = tmp_path / 'pvt_tiny.pth'
    torch.save(PVT(arch='tiny').state_dict(), v1)
    with pytest.raises(CheckpointError, match=str(v1)):
        pretrained(PVTv2, 'b1', v1)


# ------------------------------------------------------------------------------ configs and tools
def run_tool(monkeypatch, capsys, tool: str, *args: str) -> str:
    """Run tools/<tool>.py in-process as ``python tools/<tool>.py ARGS``; returns its stderr."""
    monkeypatch.setattr(sys, 'argv', [str(REPO / 'tools' / tool), *args])
    monkeypatch.delenv('PVT_DET_DEBUG', raising=False)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / 'tools' / tool), run_name='__main__')
    assert exit_info.value.code not in (0, None)
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in stderr, stderr
    return lines[0]


def test_missing_config_subprocess(tmp_path):
    """The real CLI, as a user runs it: one line on stderr, exit status 1."""
    missing = tmp_path / 'retinanet_pvt_smal_fpn.py'
    result = subprocess.run(
        [sys.executable, 'tools/train.py', str(missing)], cwd=REPO, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if str(missing) in line
    ], result.stderr
    assert 'Traceback' not in result.stderr


@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> Path:
    from pvt_det.datasets.synthetic import make_coco_dataset
    root = tmp_path_factory.mktemp('coco')
    make_coco_dataset(root, num_train=2, num_val=1, image_size=(64, 64))
    return root


def data_options(root: Path) -> list[str]:
    return [
        f'train_dataloader.dataset.data_root={root}/', f'val_dataloader.dataset.data_root={root}/',
        f'val_evaluator.ann_file={root}/annotations/instances_val2017.json',
        'train_dataloader.dataset.metainfo.classes=(square,circle,triangle)',
        'val_dataloader.dataset.metainfo.classes=(square,circle,triangle)',
        'model.bbox_head.num_classes=3', 'model.backbone.init_cfg=None'
    ]


CONFIG = 'configs/retinanet_pvt_v2_b0_fpn.py'


def test_missing_dataset_root(monkeypatch, capsys, tmp_path):
    missing = tmp_path / 'no_coco'
    line = run_tool(monkeypatch, capsys, 'train.py', CONFIG, '--work-dir', str(tmp_path / 'w'),
                    '--cfg-options', f'train_dataloader.dataset.data_root={missing}/')
    assert str(missing) in line and 'data_root' in line


def test_missing_annotation_file(monkeypatch, capsys, tmp_path, coco):
    line = run_tool(monkeypatch, capsys, 'train.py', CONFIG, '--work-dir', str(tmp_path / 'w'),
                    '--cfg-options', *data_options(coco),
                    'train_dataloader.dataset.ann_file=annotations/instances_train2077.json')
    assert f'{coco}/annotations/instances_train2077.json' in line and 'ann_file' in line


def test_missing_checkpoint_for_test_tool(monkeypatch, capsys, tmp_path, coco):
    missing = tmp_path / 'epoch_12.pth'
    line = run_tool(monkeypatch, capsys, 'test.py', CONFIG, str(missing), '--work-dir',
                    str(tmp_path / 'w'), '--cfg-options', *data_options(coco))
    assert str(missing) in line


def test_missing_checkpoint_to_resume(monkeypatch, capsys, tmp_path, coco):
    missing = tmp_path / 'iter_4.pth'
    line = run_tool(monkeypatch, capsys, 'train.py', CONFIG, '--work-dir', str(tmp_path / 'w'),
                    '--resume', str(missing), '--cfg-options', *data_options(coco))
    assert str(missing) in line


def test_missing_pretrained_backbone_checkpoint(monkeypatch, capsys, tmp_path, coco):
    missing = tmp_path / 'pvt_v2_b0.pth'
    options = [opt for opt in data_options(coco) if 'init_cfg' not in opt]
    line = run_tool(monkeypatch, capsys, 'train.py', CONFIG, '--work-dir', str(tmp_path / 'w'),
                    '--cfg-options', *options, f'model.backbone.init_cfg.checkpoint={missing}',
                    'train_cfg.max_epochs=1')
    assert str(missing) in line and 'init_cfg=None' in line


def test_unknown_backbone_type(monkeypatch, capsys, tmp_path, coco):
    line = run_tool(monkeypatch, capsys, 'train.py', CONFIG, '--work-dir', str(tmp_path / 'w'),
                    '--cfg-options', *data_options(coco), 'model.backbone.type=PVTv9')
    assert 'PVTv9' in line and 'PVTv2' in line  # names the bad type and a valid one
