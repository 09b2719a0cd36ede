"""One error contract for every tool (pvt_det.cli) and files that are never left half-written (pvt_det.fileio)."""
from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import pytest
import torch

from pvt_det.cli import ToolError, cli_main
from pvt_det.fileio import TMP_PREFIX, atomic_output
from pvt_det.models.backbones.pvt import PVTv2
from pvt_det.models.conversion import convert_checkpoint_file

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- cli_main
def _main_raising(exc: BaseException):
    @cli_main
    def main(argv=None):
        raise exc

    return main


def test_tool_error_is_printed_as_is_and_exits_1(capsys, monkeypatch):
    monkeypatch.delenv('PVT_DET_DEBUG', raising=False)
    assert _main_raising(ToolError('config file not found:\n  x.py'))() == 1
    assert capsys.readouterr().err == 'test_cli: error: config file not found: x.py\n'


def test_unexpected_error_names_its_type_and_how_to_see_the_traceback(capsys, monkeypatch):
    monkeypatch.delenv('PVT_DET_DEBUG', raising=False)
    assert _main_raising(KeyError('backbone'))() == 1
    assert capsys.readouterr().err == ("test_cli: error: KeyError: 'backbone' "
                                       '(set PVT_DET_DEBUG=1 for the traceback)\n')


def test_debug_env_reraises_and_ctrl_c_exits_130(capsys, monkeypatch):
    monkeypatch.setenv('PVT_DET_DEBUG', '1')
    with pytest.raises(KeyError):
        _main_raising(KeyError('backbone'))()
    assert _main_raising(KeyboardInterrupt())() == 130
    assert capsys.readouterr().err == 'test_cli: interrupted\n'


def test_success_returns_0_and_passes_argv():
    seen = []

    @cli_main
    def main(argv=None):
        seen.append(argv)

    assert main(['a', 'b']) == 0 and seen == [['a', 'b']]


@pytest.mark.parametrize('tool,args,expected', [
    ('print_config.py', ['configs/no_such.py'], 'print_config: error: config file not found: configs/no_such.py'),
    ('get_flops.py', ['pvt_huge'], "get_flops: error: 'pvt_huge' is neither a config file nor a model name"),
    ('export_onnx.py', ['pvt_huge', 'x.onnx'], "export_onnx: error: 'pvt_huge' is neither a config file"),
    ('convert_weights.py', ['no_such.pth', 'out.pth'], 'convert_weights: error: '),
    ('gen_model_zoo.py', ['--configs', 'configs/no_such.py'], 'gen_model_zoo: error: config not found'),
    ('benchmark.py', ['backbone', '--arch', 'pvt_huge'], "benchmark: error: unknown --arch 'pvt_huge'"),
])
def test_every_standalone_tool_fails_in_one_line_with_status_1(tool, args, expected, monkeypatch, capsys,
                                                               tmp_path):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv('PVT_DET_DEBUG', raising=False)
    monkeypatch.setattr(sys, 'argv', [str(REPO / 'tools' / tool), *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / 'tools' / tool), run_name='__main__')
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected) and 'Traceback' not in stderr, stderr
    assert not (REPO / 'x.onnx').exists() and not (REPO / 'out.pth').exists()


# ----------------------------------------------------------------------------- atomic files
def test_atomic_output_keeps_the_old_file_when_writing_fails(tmp_path):
    dst = tmp_path / 'weights.pth'
    dst.write_bytes(b'old')
    with pytest.raises(RuntimeError, match='disk full'):
        with atomic_output(dst) as tmp:
            assert Path(tmp).parent == tmp_path and tmp.endswith('.pth')
            Path(tmp).write_bytes(b'half of the new')
            raise RuntimeError('disk full')
    assert dst.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['weights.pth']
    with atomic_output(dst) as tmp:
        Path(tmp).write_bytes(b'new')
    assert dst.read_bytes() == b'new' and os.listdir(tmp_path) == ['weights.pth']
    assert oct(dst.stat().st_mode & 0o777) == '0o644'


def test_converter_killed_mid_write_leaves_no_partial_destination(tmp_path, monkeypatch):
    """``--overwrite`` of an existing DST, and the write dies half-way: DST keeps its old content."""
    torch.manual_seed(0)
    src = tmp_path / 'ours.pth'
    torch.save(PVTv2(arch='b0').state_dict(), src)
    dst = tmp_path / 'converted.pth'
    convert_checkpoint_file(src, dst)
    before = dst.read_bytes()

    def dying_save(obj, path, *args, **kwargs):
        Path(path).write_bytes(b'\x80partial')
        raise OSError('killed mid-write')

    monkeypatch.setattr(torch, 'save', dying_save)
    with pytest.raises(OSError, match='killed mid-write'):
        convert_checkpoint_file(src, dst, overwrite=True)
    assert dst.read_bytes() == before
    assert not [name for name in os.listdir(tmp_path) if name.startswith(TMP_PREFIX)]
