"""The benchmark's runs: a backbone or detector comparison, and the worker process that times one implementation."""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile

import torch

from .archs import BenchmarkError
from .detector import detector_steps
from .measure import (MATMUL_N, backbone_gmacs, interleaved_times, machine_line, time_in_worker_processes,
                      time_modes)
from .peers import build_backbones, output_differences


def run_worker(args) -> None:
    """A worker process: time the one implementation ``--only`` and write what ``time_modes`` returns."""
    if args.command == 'backbone':
        with tempfile.TemporaryDirectory() as tmpdir:
            impls = build_backbones(args.arch, [args.only], tmpdir, args.with_cp, tuple(args.shape))
        for impl in impls:
            impl.model.to(args.device)
        torch.manual_seed(0)
        x = torch.randn(args.batch, 3, *args.shape, device=args.device)
        measured = time_modes(impls, x, args, with_matmul=args.worker_matmul, memory=args.memory)
    else:
        steps = detector_steps(args)
        measured = dict(times={mode: interleaved_times({args.only: steps[mode][args.only]}, args.reps, args.device,
                                                       warmup=args.warmup) for mode in args.mode},
                        memory={mode: {} for mode in args.mode})
    measured['pid'] = os.getpid()
    with open(args.worker_out, 'w') as f:
        json.dump(measured, f)


def run_backbone(args) -> dict:
    device = args.device
    results = dict(arch=args.arch, shape=args.shape, batch=args.batch, device=device, dtype=args.dtype,
                   with_cp=args.with_cp, machine=machine_line(), isolated=args.isolate, rows=[])
    with tempfile.TemporaryDirectory() as tmpdir:
        impls = build_backbones(args.arch, args.impl, tmpdir, args.with_cp, tuple(args.shape))
    for impl in impls:
        impl.model.to(device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, *args.shape, device=device)
    if not args.no_check and len(impls) > 1:
        diffs = output_differences(impls, x[:1])
        results['max_rel_diff'] = diffs
        print('[check] ' + ', '.join(f'{n} vs {impls[0].name}: max rel diff {d:.1e}' for n, d in diffs.items()),
              file=sys.stderr)
        if max(diffs.values()) > 1e-3:
            raise BenchmarkError(f'implementations disagree ({diffs}): not the same weights, refusing to time')
    gmacs = results['gmacs_per_image'] = backbone_gmacs(args.arch, tuple(args.shape)) if args.flops else None
    if args.isolate:
        names = [impl.name for impl in impls]
        del impls  # the workers build their own
        measured = time_in_worker_processes(args, names, with_matmul=bool(gmacs))
        results['worker_pids'] = measured['pids']
    else:
        measured = time_modes(impls, x, args, with_matmul=bool(gmacs), memory=args.memory)
    matmul_gflops = {}
    for mode in args.mode:
        times = measured['times'][mode]
        matmul = 2 * MATMUL_N ** 3 / statistics.median(times.pop('matmul')) / 1e9 if gmacs else None
        matmul_gflops[mode] = matmul
        for name, ts in times.items():
            median = statistics.median(ts)
            row = dict(impl=name, mode=mode, median_s=median, times_s=ts,
                       images_per_s=args.batch / median, peak_mib=measured['memory'][mode].get(name))
            if gmacs:
                flops = 2 * gmacs * 1e9 * args.batch * (3 if mode == 'train' else 1)
                row['matmul_fraction'] = flops / median / (matmul * 1e9)
            results['rows'].append(row)
    results['matmul_gflops'] = matmul_gflops if gmacs else None
    return results




def run_detector(args) -> dict:
    results = dict(config=args.config, ref_config=args.ref_config, shape=args.shape, device=args.device,
                   dtype=args.dtype, machine=machine_line(), isolated=args.isolate, rows=[])
    if args.isolate:
        measured = time_in_worker_processes(args, ['ours', 'mmdet'], with_matmul=False)
        results['worker_pids'] = measured['pids']
        times = measured['times']
    else:
        times = {mode: interleaved_times(steps, args.reps, args.device, warmup=args.warmup)
                 for mode, steps in detector_steps(args).items()}
    for mode in args.mode:
        for name, ts in times[mode].items():
            results['rows'].append(dict(impl=name, mode=mode, median_s=statistics.median(ts), times_s=ts))
    return results


