"""Settings that would silently do nothing (issue 24): a top-level variable set after the config file copied it
elsewhere -- by ``--cfg-options`` or by a config inheriting the own-dataset example -- stops tools/train.py with
the keys to set instead; tools/print_config.py prints what runs, without the files' parse-time variables."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pvt_det.config.loading import load_config
from pvt_det.config.unused_keys import ineffective_settings, parse_time_variables

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / 'configs' / 'examples' / 'retinanet_pvt_v2_b0_my_coco.py'


def _train(capsys, tmp_path: Path, config: Path, *options: str) -> tuple[int, str]:
    """tools/train.py as `python tools/train.py ...` runs it (its shim as __main__), in this process: the exit
    status and stderr."""
    import runpy
    argv = ['tools/train.py', str(config), '--work-dir', str(tmp_path / 'work')]
    if options:
        argv += ['--cfg-options', *options]
    saved = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(str(REPO / 'tools' / 'train.py'), run_name='__main__')
        status = 0
    except SystemExit as stop:
        status = stop.code
    finally:
        sys.argv = saved
    return status, capsys.readouterr().err


def test_train_refuses_a_cfg_option_the_config_had_already_copied(tmp_path, capsys):
    """`--cfg-options max_epochs=36` on the example: train_cfg.max_epochs read the variable at parse time, so
    the run would train 12 epochs; the tool stops and says which keys to set."""
    status, stderr = _train(capsys, tmp_path, EXAMPLE, 'max_epochs=36')
    assert status == 1
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith('train: error: max_epochs=36 (--cfg-options) has no effect'), stderr[-2000:]
    assert 'train_cfg.max_epochs (12)' in lines[-1] and 'set ' in lines[-1]
    assert 'train_cfg.max_epochs=36' in lines[-1] and 'param_scheduler.1.end=36' in lines[-1]
    assert not (tmp_path / 'work').exists()  # stopped before the runner was built


def test_train_refuses_a_child_config_setting_the_examples_block(tmp_path, capsys):
    """A config inheriting the example and setting data_root / classes changes nothing; the tool says so
    (instead of 'dataset not found: data_root data/my_dataset/')."""
    child = tmp_path / 'my_balls.py'
    child.write_text(f"_base_ = {str(EXAMPLE)!r}\ndata_root = 'data/balls/'\nclasses = ('ball',)\n")
    status, stderr = _train(capsys, tmp_path, child)
    assert status == 1
    line = stderr.strip().splitlines()[-1]
    assert "data_root='data/balls/' (my_balls.py) has no effect" in line, stderr[-2000:]
    assert "train_dataloader.dataset.data_root='data/balls/'" in line
    assert "classes=('ball',) (my_balls.py) has no effect" in line
    assert "train_dataloader.dataset.metainfo.classes=('ball',)" in line
    assert 'dataset not found' not in stderr


def test_settings_that_reach_the_run_pass(tmp_path):
    """Keys read at run time, dotted keys under them, a repeated value, and a child that also sets the keys
    that used its variable are not reported; a misspelt top-level key and a dotted key under a variable are."""
    options = {'train_cfg.max_epochs': 36, 'max_epochs': 12, 'maxepochs': 36, 'train_pipeline.2.scale': (64, 64)}
    found = {finding.key: finding.message() for finding in
             ineffective_settings(str(EXAMPLE), load_config(EXAMPLE, options), options)}
    assert sorted(found) == ['maxepochs', 'train_pipeline.2.scale']
    assert found['maxepochs'] == ("maxepochs=36 (--cfg-options) has no effect: nothing reads the top-level key "
                                  "'maxepochs' after the config is parsed")
    assert 'set train_dataloader.dataset.pipeline.2.scale=(64, 64) instead' in found['train_pipeline.2.scale']
    child = tmp_path / 'complete_child.py'
    child.write_text(f"_base_ = {str(EXAMPLE)!r}\ndata_root = 'data/balls/'\n"
                     "train_dataloader = dict(dataset=dict(data_root=data_root))\n"
                     "val_dataloader = dict(dataset=dict(data_root=data_root))\n"
                     "test_dataloader = val_dataloader\n")
    assert ineffective_settings(str(child), load_config(child)) == []


def test_the_check_can_be_skipped(tmp_path):
    from pvt_det.cli import ToolError
    from pvt_det.config.unused_keys import check_settings_take_effect
    with pytest.raises(ToolError, match="preflight = dict\\(skip=\\['unused_keys'\\]\\)"):
        check_settings_take_effect(EXAMPLE, load_config(EXAMPLE, {'max_epochs': 36}), {'max_epochs': 36})
    options = {'max_epochs': 36, 'preflight.skip': ['unused_keys']}
    check_settings_take_effect(EXAMPLE, load_config(EXAMPLE, options), options)


def test_print_config_prints_what_runs(capsys):
    """No leftover base variables (pvt_small_backbone, pvt_v2_b2_backbone, ...) in the printed config; the
    keys that used them are there."""
    from pvt_det.tools.print_config import main
    assert main(['configs/retinanet_pvt_small_fpn.py']) == 0
    printed = capsys.readouterr().out
    top_level = {line.split(' = ')[0] for line in printed.splitlines() if ' = ' in line and line[0].isalpha()}
    assert {'model', 'train_dataloader', 'train_cfg', 'test_pipeline'} <= top_level
    leftovers = {'pvt_small_backbone', 'pvt_v2_b2_backbone', 'pvt_v2_b2_li_backbone', 'train_pipeline',
                 'backend_args', 'dataset_type', 'data_root'}
    assert not top_level & leftovers, top_level & leftovers
    assert "type='PVT'" in printed  # the backbone the variable held is in model.backbone


def test_parse_time_variables_of_a_pvt_config():
    variables = parse_time_variables(str(REPO / 'configs' / 'retinanet_pvt_small_fpn.py'))
    assert {'pvt_small_backbone', 'train_pipeline', 'data_root'} <= variables
    assert not variables & {'model', 'train_dataloader', 'test_pipeline', 'optim_wrapper'}
