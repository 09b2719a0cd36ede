"""tools/get_flops.py and tools/benchmark.py (pvt_det.benchmark): FLOP counts as the papers count them; the
benchmark compares implementations holding the same weights."""
import os.path as osp
import os

import pytest
import torch

from pvt_det.benchmark import flops as get_flops
from pvt_det.benchmark import measure, peers, runs
from pvt_det.models.backbones import PVTv2
from pvt_det.tools import benchmark as benchmark_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.mark.parametrize('name, paper_gflops', [('pvt_small', 3.8), ('pvt_v2_b2', 4.0)])
def test_classifier_flops_match_the_papers(name, paper_gflops):
    model, _ = get_flops.build_model(name, (224, 224), backbone_only=False)
    flops, params = get_flops.count_flops(model, (3, 224, 224))
    assert abs(flops / 1e9 - paper_gflops) <= 0.15
    assert 24e6 < params < 26e6


def test_attention_matmuls_are_counted():
    """The SDPA handle adds exactly q@k^T + attn@v (N*N'*C each) of every block."""
    from mmengine.analysis import FlopAnalyzer
    arch = dict(embed_dims=[8, 16], num_heads=[1, 2], depths=[2, 1], mlp_ratios=[2, 2], sr_ratios=[2, 1])
    model = PVTv2(arch=arch, out_indices=(0, 1)).eval()
    x = torch.randn(1, 3, 64, 96)
    with_attention = get_flops.count_flops(model, (3, 64, 96))[0]
    analyzer = FlopAnalyzer(model, (x,))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    without = analyzer.total()
    tokens = [16 * 24, 8 * 12]  # stride 4 and 8 maps
    kv_tokens = [8 * 12, 8 * 12]  # stage 0 reduced by sr_ratio 2; stage 1 not reduced
    expected = sum(depth * 2 * n * m * dim
                   for depth, n, m, dim in zip(arch['depths'], tokens, kv_tokens, arch['embed_dims']))
    assert with_attention - without == expected


def test_get_flops_cli_one_line_error_for_unknown_name():
    from helpers import run_tool_in_process
    result = run_tool_in_process('get_flops', 'pvt_huge')
    assert result.returncode == 1 and 'pvt_huge' in result.stderr and 'pvt_v2_b2' in result.stderr
    assert 'Traceback' not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_benchmark_runs_ours_mmdet_and_hf_on_the_same_weights(tmp_path):
    args = benchmark_tool.parse_args(['backbone', '--arch', 'pvt_v2_b0', '--shape', '64', '96', '--reps', '1',
                                 '--warmup', '0', '--rounds', '1', '--no-flops'])  # one worker process each
    results = runs.run_backbone(args)
    pids = [pid for worker_pids in results['worker_pids'].values() for pid in worker_pids]
    assert sorted(results['worker_pids']) == ['hf', 'mmdet', 'ours'] and len(set(pids)) == 3
    assert os.getpid() not in pids  # timed in processes of their own
    assert set(results['max_rel_diff']) == {'mmdet', 'hf'}
    assert max(results['max_rel_diff'].values()) < 1e-4
    rows = {(r['impl'], r['mode']): r for r in results['rows']}
    assert set(rows) == {(impl, mode) for impl in ('ours', 'mmdet', 'hf') for mode in ('infer', 'train')}
    for row in rows.values():
        assert row['median_s'] > 0
        assert row['peak_mib'] > 0
    # Training keeps activations for the backward pass: more memory than inference.
    assert rows['ours', 'train']['peak_mib'] > rows['ours', 'infer']['peak_mib']


def test_benchmark_v1_reference_weights_agree_at_a_non_224_size(tmp_path):
    impls = peers.build_backbones('pvt_tiny', ['ours', 'mmdet', 'hf'], str(tmp_path), shape=(64, 96))
    diffs = peers.output_differences(impls, torch.randn(1, 3, 64, 96))
    assert set(diffs) == {'mmdet', 'hf'} and max(diffs.values()) < 1e-4


def test_peak_memory_counts_what_a_step_allocates():
    def step():
        a = torch.ones(1024, 1024)  # 4 MiB
        b = a + 1  # 4 MiB more while a is alive
        del a, b
    assert 7.9 < measure.peak_memory(step, 'cpu') < 8.5


def test_detector_benchmark_times_both_configs_in_worker_processes():
    args = benchmark_tool.parse_args(['detector', '--shape', '64', '64', '--reps', '1', '--warmup', '0', '--rounds', '1'])
    results = runs.run_detector(args)
    assert sorted(results['worker_pids']) == ['mmdet', 'ours']
    assert os.getpid() not in [pid for pids in results['worker_pids'].values() for pid in pids]
    rows = {(r['impl'], r['mode']): r for r in results['rows']}
    assert set(rows) == {(impl, mode) for impl in ('ours', 'mmdet') for mode in ('infer', 'train')}
    assert all(row['median_s'] > 0 for row in rows.values())


@pytest.mark.parametrize('flag', ['--rounds', '--reps'])
def test_benchmark_refuses_zero_rounds_or_reps(flag, capsys):
    with pytest.raises(SystemExit):
        benchmark_tool.parse_args(['backbone', flag, '0'])
    assert f'argument {flag}: 0 is not a count: use 1 or more' in capsys.readouterr().err
