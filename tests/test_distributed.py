"""The launchers on one machine: tools/dist_train.sh and dist_test.sh with 2 processes (torchrun, gloo), the
same run as two nodes over the loopback address (issue 24: NNODES / NODE_RANK / MASTER_ADDR / PORT), and as
one process with 2-step gradient accumulation. One test, so that the 2-process run is made once and compared
with both: two nodes, one process each, train as the single-node run does (same ranks, data split and gloo
all-reduce: the same losses and weights); one process x 1 image with 2-step accumulation takes the same
optimizer steps as 2 processes x 1 image (DDP averages the gradients), up to float summation order.
Tiny RetinaNet-PVTv2-b0, 64 px, 6 images at 1 per process: 3 iterations, constant lr, no drop-path, no flip
(the runs draw different random numbers)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch

from test_reliability_train import PYTHON, REPO, env, free_port, logged, run, train_cmd, write_config

COMMON = dict(drop_path=0.0, flip=0.0, batch_size=1, max_epochs=1, schedule='[]')


def _launch(script: str, *args: str, **environment: str) -> subprocess.Popen:
    return subprocess.Popen(['bash', str(REPO / 'tools' / script), *args], cwd=REPO,
                            env={**env(), 'PYTHON': PYTHON, 'PORT': str(free_port()), **environment},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, what: str) -> str:
    try:
        out, err = process.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    assert process.returncode == 0, f'{what}: {err[-3000:]}'
    return out


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)['state_dict']


def _largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[key] - b[key]).abs().max()) for key in a)


@pytest.mark.slow
def test_two_processes_two_nodes_and_one_process_agree(tmp_path):
    config = write_config(tmp_path / 'tiny.py', **COMMON)
    one_node = tmp_path / 'one_node'
    _finish(_launch('dist_train.sh', str(config), '2', '--work-dir', str(one_node)), 'one node, 2 processes')
    log = next(one_node.glob('*/*.log')).read_text()  # rank 0's runtime environment
    assert "'backend': 'gloo'" in log and 'Distributed training: True' in log and 'GPU number: 2' in log
    one_node_log, one_node_val = logged(one_node)
    assert sorted(one_node_log) == [1, 2, 3]  # 6 images / (2 processes x 1)
    tested = _finish(_launch('dist_test.sh', str(config), str(one_node / 'iter_3.pth'), '2',
                             '--work-dir', str(tmp_path / 'test')), 'dist_test.sh, 2 processes')
    # The test tool's COCO AP of the final checkpoint is the one the training run's validation logged.
    assert float(re.search(r'^bbox_mAP: ([\d.]+)$', tested, re.M)[1]) == pytest.approx(
        one_node_val['coco/bbox_mAP'], abs=1e-3)

    port = str(free_port())
    nodes = [_launch('dist_train.sh', str(config), '1', '--work-dir', str(tmp_path / 'two_nodes'), NNODES='2',
                     NODE_RANK=str(rank), MASTER_ADDR='127.0.0.1', PORT=port) for rank in (0, 1)]
    for rank, node in enumerate(nodes):
        _finish(node, f'node {rank}')
    two_nodes_log, two_nodes_val = logged(tmp_path / 'two_nodes')
    assert sorted(two_nodes_log) == [1, 2, 3]  # both ran 2 ranks
    for step in one_node_log:
        assert two_nodes_log[step]['loss'] == pytest.approx(one_node_log[step]['loss'], rel=1e-5), step
    moved = _largest_difference(_weights(one_node / 'iter_3.pth'), _weights(one_node / 'iter_2.pth'))
    apart = _largest_difference(_weights(tmp_path / 'two_nodes' / 'iter_3.pth'), _weights(one_node / 'iter_3.pth'))
    assert moved > 1e-4 and apart < 1e-6, (moved, apart)  # it trained, and the two layouts agree
    assert two_nodes_val['coco/bbox_mAP'] == one_node_val['coco/bbox_mAP']

    single_config = write_config(tmp_path / 'single.py', accumulate=2, **COMMON)
    run(train_cmd(single_config, tmp_path / 'single'))
    single_log, single_val = logged(tmp_path / 'single')
    assert sorted(single_log) == list(range(1, 7))  # 6 images / 1, 2 per optimizer step
    single = _weights(tmp_path / 'single' / 'iter_6.pth')
    # lr 1e-3 with Adam moves weights by ~1e-3 per step; the runs agree to well below that.
    assert _largest_difference(single, _weights(tmp_path / 'single' / 'iter_2.pth')) > 1e-3
    assert _largest_difference(single, _weights(one_node / 'iter_3.pth')) < 1e-4
    assert abs(single_val['coco/bbox_mAP'] - one_node_val['coco/bbox_mAP']) <= 0.01
