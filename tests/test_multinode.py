"""Several machines (issue 24): the launchers take NNODES / NODE_RANK / MASTER_ADDR / PORT. Two launches of
tools/dist_train.sh on this machine, one process each, joined over the loopback address as node 0 and node 1,
train as the 2-process single-node run does: same ranks, same data split, same gloo all-reduce, so the same
losses and weights."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from test_reliability_train import PYTHON, REPO, env, free_port, logged, write_config

# Tiny RetinaNet-PVTv2-b0, 64 px, 6 images at 1 per process: 3 iterations, constant lr, no random flip.
COMMON = dict(drop_path=0.0, flip=0.0, batch_size=1, max_epochs=1, schedule='[]')


def _launch(config: Path, work_dir: Path, processes: int, **environment: str) -> subprocess.Popen:
    return subprocess.Popen(['bash', str(REPO / 'tools' / 'dist_train.sh'), str(config), str(processes),
                             '--work-dir', str(work_dir)], cwd=REPO, env=dict(env(), PYTHON=PYTHON, **environment),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, what: str) -> None:
    try:
        _out, err = process.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        process.kill()
        _out, err = process.communicate()
    assert process.returncode == 0, f'{what}: {err[-3000:]}'


@pytest.mark.slow
def test_two_nodes_over_loopback_match_two_processes_on_one_node(tmp_path):
    config = write_config(tmp_path / 'tiny.py', **COMMON)
    port = str(free_port())
    nodes = [_launch(config, tmp_path / 'two_nodes', 1, NNODES='2', NODE_RANK=str(rank), MASTER_ADDR='127.0.0.1',
                     PORT=port) for rank in (0, 1)]
    for rank, node in enumerate(nodes):
        _finish(node, f'node {rank}')
    _finish(_launch(config, tmp_path / 'one_node', 2, PORT=str(free_port())), 'one node, 2 processes')

    two_nodes, two_nodes_val = logged(tmp_path / 'two_nodes')
    one_node, one_node_val = logged(tmp_path / 'one_node')
    assert sorted(two_nodes) == sorted(one_node) == [1, 2, 3]  # 6 images / (2 processes x 1): both ran 2 ranks
    for step in one_node:
        assert abs(two_nodes[step]['loss'] - one_node[step]['loss']) <= 1e-5 * abs(one_node[step]['loss']), step
    first = torch.load(tmp_path / 'one_node' / 'iter_2.pth', weights_only=True)['state_dict']
    ours = torch.load(tmp_path / 'two_nodes' / 'iter_3.pth', weights_only=True)['state_dict']
    theirs = torch.load(tmp_path / 'one_node' / 'iter_3.pth', weights_only=True)['state_dict']
    assert ours.keys() == theirs.keys()
    moved = max(float((theirs[key] - first[key]).abs().max()) for key in theirs)
    worst = max(float((ours[key] - theirs[key]).abs().max()) for key in theirs)
    assert moved > 1e-4 and worst < 1e-6, (moved, worst)  # it trained, and the two layouts agree
    assert two_nodes_val['coco/bbox_mAP'] == one_node_val['coco/bbox_mAP']
