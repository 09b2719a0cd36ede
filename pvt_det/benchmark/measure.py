"""How the benchmark measures: timed steps, peak memory, the matmul reference, and worker processes.

Each implementation is timed in processes of its own (``--rounds`` of them, alternating ours, mmdet, hf, hf,
mmdet, ours, ...), so that none inherits another's allocator state and load from other processes on a shared
machine hits all of them alike; each worker runs ``--warmup`` untimed and ``--reps`` timed runs, with a
2048x2048 matmul reference timed between them.

Peak memory is the peak of bytes held by torch's allocator during one run above what was held before it: on
CUDA ``torch.cuda.max_memory_allocated``; on CPU the running total that torch's profiler records on every
allocation and free (``profile_memory=True``, "Total Allocated"), taken in a separate, untimed run. It counts
tensors (activations, gradients, workspaces), not the allocator's or the process's overhead.
"""
from __future__ import annotations

import contextlib
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from .archs import BenchmarkError
from .peers import Impl, build_ours_random

MATMUL_N = 2048  # the fp32 reference: a 2048x2048 matrix product
# Worker processes run the benchmark module itself; the checkout comes first on their path, as it does here.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def synchronize(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def autocast(device: str, dtype: str):
    if dtype == 'bf16':
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_step(impl: Impl, x: torch.Tensor, mode: str, device: str, dtype: str) -> Callable[[], None]:
    """One inference forward, or one training forward + backward (loss: mean of every output map)."""
    model = impl.model

    def infer():
        with torch.inference_mode(), autocast(device, dtype):
            impl.run(x)

    def train():
        with autocast(device, dtype):
            loss = sum(o.float().mean() for o in impl.run(x))
        loss.backward()
        model.zero_grad(set_to_none=True)

    if mode == 'infer':
        model.eval()
        return infer
    model.train()
    return train


def time_once(step: Callable[[], None], device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def peak_memory(step: Callable[[], None], device: str) -> float:
    """Peak bytes allocated by torch during ``step`` above what was allocated before it (MiB)."""
    if device == 'cuda':
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    path = tempfile.mktemp(suffix='.json')
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)['traceEvents']
    finally:
        if osp.exists(path):
            os.remove(path)
    totals = [e['args']['Total Allocated'] for e in events
              if e.get('name') == '[memory]' and e['args'].get('Device Type') == 0]
    return max(totals, default=0) / 2 ** 20


def interleaved_times(steps: dict[str, Callable[[], None]], reps: int, device: str,
                      warmup: int = 1) -> dict[str, list[float]]:
    """Run every step ``warmup`` times, then ``reps`` rounds of one run of each, in turn."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for rep in range(reps):
        order = list(steps) if rep % 2 == 0 else list(steps)[::-1]  # no implementation always runs first
        for name in order:
            times[name].append(time_once(steps[name], device))
    return times


def matmul_throughput(n: int = 2048, reps: int = 7, device: str = 'cpu', dtype: str = 'fp32') -> float:
    """Median GFLOP/s (2*n^3 per product) of a large square matrix multiply."""
    torch_dtype = torch.bfloat16 if dtype == 'bf16' else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=torch_dtype) for _ in range(2))
    times = interleaved_times({'mm': lambda: a @ b}, reps, device, warmup=2)['mm']
    return 2 * n ** 3 / statistics.median(times) / 1e9


def backbone_gmacs(arch: str, shape: tuple[int, int]) -> float | None:
    """Multiply-adds (G) of our backbone for one image, attention matmuls included (as tools/get_flops.py)."""
    try:
        from .flops import count_flops
        model = build_ours_random(arch)
        return count_flops(model, (3, *shape))[0] / 1e9
    except Exception as e:  # FLOPs are an extra column; the timings stand without them
        print(f'[warn] no FLOP count: {e}', file=sys.stderr)
        return None


def machine_line() -> str:
    import platform
    cpu = platform.processor() or 'cpu'
    with contextlib.suppress(OSError):
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    load = ' '.join(open('/proc/loadavg').read().split()[:3]) if osp.exists('/proc/loadavg') else '?'
    return (f'{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, '
            f'{torch.get_num_threads()} threads, load average {load}')


def time_modes(impls: list[Impl], x: torch.Tensor, args, with_matmul: bool, memory: bool) -> dict:
    """Interleaved timings of every implementation (and of the matmul reference) per mode, and peak memory.

    Returns ``{'times': {mode: {name: [s, ...]}}, 'memory': {mode: {name: MiB}}}``.
    """
    device, dtype = args.device, args.dtype
    a, b = (torch.randn(MATMUL_N, MATMUL_N, device=device) for _ in range(2))
    measured = dict(times={}, memory={})
    for mode in args.mode:
        steps = {impl.name: make_step(impl, x, mode, device, dtype) for impl in impls}
        if with_matmul:  # the matmul reference runs in the same rounds, so it sees the same machine load
            steps['matmul'] = lambda: (a @ b if dtype == 'fp32' else a.bfloat16() @ b.bfloat16())
        measured['times'][mode] = interleaved_times(steps, args.reps, device, warmup=args.warmup)
        steps.pop('matmul', None)
        measured['memory'][mode] = {name: peak_memory(step, device) for name, step in steps.items()} if memory else {}
    return measured


def time_in_worker_processes(args, names: list[str], with_matmul: bool) -> dict:
    """``time_modes`` with every implementation in a process of its own, ``--rounds`` times, alternating.

    One process keeps one allocator: in a shared process, whether a large tensor costs fresh pages (page faults)
    or reuses freed memory depends on what the *other* implementations allocated before it (glibc adapts its
    mmap threshold to past frees), which moved mmdet's 512x640 inference time by 30% between runs. Separate
    processes give each implementation the allocator state it has when a user runs it alone.
    """
    merged = dict(times={mode: {} for mode in args.mode}, memory={mode: {} for mode in args.mode}, pids={})
    with tempfile.TemporaryDirectory() as tmpdir:
        for round_index in range(args.rounds):
            order = names if round_index % 2 == 0 else names[::-1]
            for name in order:
                out = osp.join(tmpdir, f'{round_index}_{name}.json')
                # memory once per implementation (first round); the matmul reference in every worker
                memory = getattr(args, 'memory', False) and round_index == 0
                worker_argv = worker_command(args, name, out, memory=memory, with_matmul=with_matmul)
                result = subprocess.run(worker_argv, capture_output=True, text=True, env=worker_env())
                if result.returncode != 0:
                    last_line = (result.stderr.strip().splitlines() or ['no output'])[-1]
                    raise BenchmarkError(f'the {name} worker process failed: {last_line}')
                with open(out) as f:
                    measured = json.load(f)
                for mode in args.mode:
                    for key, values in measured['times'][mode].items():
                        merged['times'][mode].setdefault(key, []).extend(values)
                    merged['memory'][mode].update(measured['memory'].get(mode, {}))
                merged['pids'].setdefault(name, []).append(measured['pid'])
                print(f'[round {round_index + 1}/{args.rounds}] {name} done', file=sys.stderr)
    return merged


def worker_command(args, name: str, out: str, memory: bool, with_matmul: bool) -> list[str]:
    """The benchmark tool with the parent's own arguments, timing only ``name`` and writing to ``out``."""
    argv = [sys.executable, '-m', 'pvt_det.tools.benchmark', *args.argv, '--only', name, '--worker-out', out]
    if args.command == 'backbone':
        argv.append('--memory' if memory else '--no-memory')
    if with_matmul:
        argv.append('--worker-matmul')
    return argv




def worker_env() -> dict[str, str]:
    """This environment with the checkout that holds this package first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get('PYTHONPATH')) if p)
    return env
