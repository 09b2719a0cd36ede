"""A newcomer's path, as the docs write it: the launchers without an activated venv, and section 5 of
docs/get_started.md ("Your own COCO-format dataset") run command by command on a small generated
dataset, to a detector that has learned."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GET_STARTED = REPO / 'docs' / 'get_started.md'
EXAMPLES = REPO / 'configs' / 'examples'
BLOCK_START = '# ---- What to change for your data'
BLOCK_END = '# ----------'


def _fake_python(bin_dir: Path, marker: str) -> None:
    """A ``python`` that is not the project's: it prints ``marker`` and fails."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    fake = bin_dir / 'python'
    fake.write_text(f'#!/bin/sh\necho {marker}\nexit 97\n')
    fake.chmod(0o755)


def test_launchers_use_the_project_venv_without_activation(tmp_path):
    """`bash tools/dist_train.sh CONFIG N` from a shell whose PATH has another `python` (not the venv's):
    the launcher runs the project's .venv/bin/python, as `make` does; PYTHON= still overrides it."""
    venv_python = REPO / '.venv' / 'bin' / 'python'
    assert venv_python.is_file(), 'the test needs the .venv of `make setup`'
    _fake_python(tmp_path / 'bin', 'the-python-on-PATH')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHON', 'VIRTUAL_ENV')}
    env['PATH'] = f'{tmp_path / "bin"}:/usr/bin:/bin'
    config = 'configs/examples/retinanet_pvt_v2_b0_my_coco.py'
    # --help: the interpreter, torchrun and tools/train.py's parser, without a training run.
    found = subprocess.run(['bash', 'tools/dist_train.sh', config, '1', '--help'], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert found.returncode == 0, found.stdout[-2000:] + found.stderr[-2000:]
    assert 'the-python-on-PATH' not in found.stdout and '--auto-scale-lr' in found.stdout
    overridden = subprocess.run(['bash', 'tools/dist_test.sh', config, 'x.pth', '1'], cwd=REPO,
                                env=dict(env, PYTHON=str(tmp_path / 'bin' / 'python')),
                                capture_output=True, text=True, timeout=60)
    assert overridden.returncode == 97 and 'the-python-on-PATH' in overridden.stdout


def _knob_block(text: str) -> str:
    start = text.index(BLOCK_START)
    return text[start:text.index(BLOCK_END, start)]


def test_small_dataset_example_is_the_own_dataset_example_with_its_block_filled_in():
    """configs/examples/*_my_coco_small.py is what section 5 tells a user to do with the example:
    the same file with only the "What to change" block edited; and the page shows that block."""
    example = (EXAMPLES / 'retinanet_pvt_v2_b0_my_coco.py').read_text()
    small = (EXAMPLES / 'retinanet_pvt_v2_b0_my_coco_small.py').read_text()
    body = example[example.index('\n_base_ = '):]  # the header comments differ
    small_body = small[small.index('\n_base_ = '):]
    assert body.replace(_knob_block(body), '') == small_body.replace(_knob_block(small_body), '')
    assert _knob_block(body) != _knob_block(small_body)
    assigned = [line.split(' = ')[0] for line in _knob_block(small_body).splitlines() if ' = ' in line
                and not line.startswith('#')]
    section = _section_5()
    for line in _knob_block(small_body).splitlines():
        if ' = ' in line and not line.startswith('#'):
            assert line in section, f'docs/get_started.md section 5 does not show {line!r}'
    assert {'image_scale', 'max_epochs', 'warmup_iters', 'lr', 'pretrained'} <= set(assigned)


def _section_5() -> str:
    text = GET_STARTED.read_text()
    start = text.index('## 5. Your own COCO-format dataset')
    return text[start:text.index('\n## ', start + 1)]


def _commands(block: str) -> list[str]:
    lines = block.replace('\\\n', ' ').splitlines()
    return [line.split(' #')[0].strip() for line in lines if line.strip() and not line.startswith('#')]


def _as_run_here(command: str) -> list[str]:
    """A documented command, run from another folder: `python` is this interpreter, tools/ and
    configs/ paths are the repository's (data/ and work_dirs/ stay relative to the folder)."""
    words = shlex.split(command)
    assert words[0] == 'python', command
    repo_path = re.compile(r'^(tools|configs)/')
    return [sys.executable] + [str(REPO / w) if repo_path.match(w) else w for w in words[1:]]


def test_own_dataset_section_trains_a_detector_that_learns(tmp_path):
    """Section 5's walk-through, command by command as the page gives them, from a fresh folder:
    generate the small dataset, train the small-dataset example, test the checkpoint; the AP must
    rise well above an untrained detector's (about 0.00 on this data)."""
    section = _section_5()
    walkthrough = next(body for lang, body in re.findall(r'^```(\w*)\n(.*?)^```', section, re.M | re.S)
                       if lang == 'bash' and 'make_coco_dataset' in body)
    commands = _commands(walkthrough)
    assert [c.split()[1] for c in commands] == ['-c', 'tools/train.py', 'tools/test.py'], commands
    # One thread: the figure then repeats on any machine of this CPU type, loaded or not.
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    outputs = []
    for command in commands:
        result = subprocess.run(_as_run_here(command), cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f'{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}'
        outputs.append(result.stdout)
    metrics = dict(re.findall(r'^(bbox_mAP\w*): ([\d.]+)$', outputs[-1], re.M))
    assert float(metrics['bbox_mAP']) > 0.15, outputs[-1][-2000:]
    assert float(metrics['bbox_mAP_50']) > 0.4, outputs[-1][-2000:]
    # The page shows the figure this run printed (deterministic on one machine; a few points across CPUs).
    shown = re.search(r'^bbox_mAP: ([\d.]+)$', section, re.M)
    assert shown and abs(float(shown[1]) - float(metrics['bbox_mAP'])) < 0.15, (shown, metrics)


def test_small_example_learns_on_another_small_dataset(tmp_path):
    """The report: on another generated 12-image set (seed 7) the small example's recipe spiked and learnt
    little (bbox mAP 0.161 here with 6 warm-up iterations and AdamW's beta2 0.999). Copied and its data
    line edited, as section 5 says, the shipped recipe (12 warm-up iterations, betas (0.9, 0.98), clipping
    at norm 10) scored 0.239 on it; section 5 lists every run of the comparison."""
    import torch
    from pvt_det.datasets import make_coco_dataset
    from helpers import run_tool_in_process
    from test_tools import printed_metrics
    make_coco_dataset(tmp_path / 'data' / 'other', num_train=12, num_val=8, image_size=(128, 128), seed=7)
    example = (EXAMPLES / 'retinanet_pvt_v2_b0_my_coco_small.py').read_text()
    config = tmp_path / 'my_other.py'
    config.write_text(example.replace("data_root = 'data/shapes/'", "data_root = 'data/other/'")
                      .replace("_base_ = '../", f"_base_ = '{REPO / 'configs'}/"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the figure above, on any machine of this CPU type
    try:
        trained = run_tool_in_process('train', config, cwd=tmp_path)
        assert trained.returncode == 0, trained.stderr[-3000:]
        tested = run_tool_in_process('test', config, 'work_dirs/my_other/epoch_12.pth', cwd=tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert printed_metrics(tested.stdout)['bbox_mAP'] > 0.2, tested.stdout[-2000:]
