"""Speed and peak memory of pvt_det's backbones and detectors against mmdet's and Hugging Face's.

Every implementation gets the same weights (random, every parameter perturbed, written once in the
Hugging Face layout and loaded through each implementation's own checkpoint loader) and the same
input; their outputs are checked to agree before anything is timed. Each implementation is then timed in
processes of its own (``--rounds`` of them, alternating ours, mmdet, hf, hf, mmdet, ours, ...), so that none
inherits another's allocator state and load from other processes on a shared machine hits all of them alike;
each worker runs ``--warmup`` untimed and ``--reps`` timed runs, with a 2048x2048 matmul reference timed
between them. The median of all timed runs is reported. ``--no-isolate`` interleaves them in one process.
How time and memory are measured: :mod:`pvt_det.benchmark.measure`.

Examples::

    python tools/benchmark.py matmul
    python tools/benchmark.py backbone --arch pvt_v2_b2 --shape 800 1216 --batch 1 --reps 3
    python tools/benchmark.py backbone --arch pvt_small --shape 224 224 --batch 32 --mode infer
    python tools/benchmark.py backbone --arch pvt_v2_b2 --shape 512 640 --with-cp --impl ours
    python tools/benchmark.py detector --shape 800 1216 --reps 3
    python tools/benchmark.py backbone --arch pvt_v2_b2 --device cuda --dtype bf16
    python tools/benchmark.py scaling --arch pvt_small pvt_v2_b2 pvt_v2_b2_li --sizes 224 448 896 --out-dir out
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from pvt_det.benchmark.archs import ALL_ARCHS, IMPLS, BenchmarkError, has_mmdet_peer
from pvt_det.benchmark.detector import MMDET_RETINANET_PVT_S, OUR_RETINANET_PVT_S
from pvt_det.benchmark.measure import machine_line, matmul_throughput
from pvt_det.benchmark.report import print_backbone, print_detector
from pvt_det.benchmark.runs import run_backbone, run_detector, run_worker
from pvt_det.benchmark.scaling import print_scaling, scaling_rows, slopes, write_outputs
from pvt_det.cli import cli_main


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'{value} is not a count: use 1 or more')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    mm = sub.add_parser('matmul', help="the machine's fp32 (or bf16) matrix multiply throughput")
    bb = sub.add_parser('backbone', help='backbone forward / forward+backward: ours vs mmdet vs HF')
    det = sub.add_parser('detector', help='RetinaNet train iteration / inference: ours vs mmdet config')
    sc = sub.add_parser('scaling', help='backbone time and peak memory against the input side: CSV and log-log plot')
    for p in (bb, det, mm, sc):
        p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
        p.add_argument('--dtype', default='fp32', choices=('fp32', 'bf16'), help='bf16 = autocast')
        p.add_argument('--threads', type=int, help='torch threads (default: torch default)')
        p.add_argument('--json', help='also write the results here')
    for p in (bb, det, sc):
        p.add_argument('--reps', type=positive_int, default=3,
                       help='timed runs per implementation (per worker process with --isolate); median reported')
        p.add_argument('--warmup', type=int, default=1)
        p.add_argument('--rounds', type=positive_int, default=3, help='worker processes per implementation (--isolate)')
        p.add_argument('--isolate', action=argparse.BooleanOptionalAction, default=True,
                       help='time every implementation in processes of its own (default), --rounds of them '
                       'each, alternating; --no-isolate interleaves them in this process')
    for p in (bb, det):
        p.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'))
        p.add_argument('--mode', nargs='+', default=['infer', 'train'], choices=('infer', 'train'))
        p.add_argument('--only', help=argparse.SUPPRESS)  # worker: the implementation to time
        p.add_argument('--worker-out', help=argparse.SUPPRESS)
        p.add_argument('--worker-matmul', action='store_true', help=argparse.SUPPRESS)
    bb.add_argument('--arch', default='pvt_v2_b2', help=f'one of {", ".join(ALL_ARCHS)}')
    bb.add_argument('--batch', type=int, default=1)
    bb.add_argument('--impl', nargs='+', default=list(IMPLS), help='implementations to compare')
    bb.add_argument('--with-cp', action='store_true', help='ours with activation checkpointing')
    bb.add_argument('--memory', action=argparse.BooleanOptionalAction, default=True)
    bb.add_argument('--flops', action=argparse.BooleanOptionalAction, default=True,
                    help="also report FLOPs / time as a fraction of the machine's matmul throughput")
    bb.add_argument('--no-check', action='store_true', help='skip the output-equality check')
    det.add_argument('--config', default=OUR_RETINANET_PVT_S)
    det.add_argument('--ref-config', default=MMDET_RETINANET_PVT_S)
    det.add_argument('--arch', default='pvt_small', help='backbone arch of both configs')
    sc.add_argument('--arch', nargs='+', default=['pvt_small', 'pvt_v2_b2', 'pvt_v2_b2_li'],
                    help=f'archs, each one curve per implementation; of {", ".join(ALL_ARCHS)}')
    sc.add_argument('--sizes', type=positive_int, nargs='+', default=[224, 448, 672, 896, 1120, 1344],
                    help='square input sides (pixels)')
    sc.add_argument('--out-dir', required=True, help='writes scaling.csv and scaling.png here')
    sc.add_argument('--impl', nargs='+', default=list(IMPLS),
                    help='implementations; mmdet is skipped for archs it lacks (v2-b2-li, CvT)')
    sc.add_argument('--train', action='store_true', help='also time a training step (forward + backward)')
    sc.add_argument('--memory', action=argparse.BooleanOptionalAction, default=True)
    sc.add_argument('--no-check', action='store_true', help='skip the output-equality check at each size')
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what worker processes are started with
    return args


def scaling_point_args(args, arch: str, side: int):
    """The ``backbone`` command that measures one point of the scaling curves: ``arch`` at ``side`` x ``side``."""
    impls = [impl for impl in args.impl if impl != 'mmdet' or has_mmdet_peer(arch)]
    argv = ['backbone', '--arch', arch, '--shape', str(side), str(side), '--impl', *impls,
            '--mode', 'infer', *(['train'] if args.train else []), '--reps', str(args.reps),
            '--warmup', str(args.warmup), '--rounds', str(args.rounds), '--device', args.device,
            '--dtype', args.dtype, '--no-flops', '--memory' if args.memory else '--no-memory',
            '--isolate' if args.isolate else '--no-isolate']
    if args.threads:
        argv += ['--threads', str(args.threads)]
    if args.no_check:
        argv.append('--no-check')
    return parse_args(argv)


def run_scaling(args) -> dict:
    """Every (arch, side) point measured as ``backbone`` measures it; CSV and PNG written to ``--out-dir``."""
    def run_point(arch: str, side: int) -> dict:
        print(f'[scaling] {arch} {side}x{side}', file=sys.stderr)
        return run_backbone(scaling_point_args(args, arch, side))

    rows = scaling_rows(args.arch, args.sizes, run_point)
    machine = machine_line()
    runs = f'{args.rounds}x{args.reps} runs in worker processes' if args.isolate else f'{args.reps} runs'
    title = (f'backbone cost vs input side, batch 1, {args.device} {args.dtype}, median of {runs} '
             '(log-log; slope 2 = linear in tokens, 4 = quadratic)')
    csv_path, png_path = write_outputs(rows, args.out_dir, title)
    return dict(rows=rows, slopes=slopes(rows), machine=machine, csv=str(csv_path), png=str(png_path))


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise BenchmarkError('--device cuda but torch sees no GPU; use --device cpu')
    if args.command == 'matmul':
        gflops = matmul_throughput(4096 if args.device == 'cuda' else 2048, device=args.device, dtype=args.dtype)
        results = dict(matmul_gflops=gflops, machine=machine_line())
        print(f'{args.dtype} matmul: {gflops:.1f} GFLOP/s ({machine_line()})')
    elif getattr(args, 'worker_out', None):
        run_worker(args)
        return 0
    elif args.command == 'backbone':
        results = run_backbone(args)
        print_backbone(results)
    elif args.command == 'scaling':
        results = run_scaling(args)
        print_scaling(results['rows'], results['slopes'], results['machine'])
        print(f"# wrote {results['csv']} and {results['png']}")
    else:
        results = run_detector(args)
        print_detector(results)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
