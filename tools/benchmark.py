"""Speed and peak memory of pvt_det's backbones and detectors against mmdet's and Hugging Face's.

Every implementation gets the same weights (random, every parameter perturbed, written once in the
Hugging Face layout and loaded through each implementation's own checkpoint loader) and the same
input; their outputs are checked to agree before anything is timed. Each implementation is then timed in
processes of its own (``--rounds`` of them, alternating ours, mmdet, hf, hf, mmdet, ours, ...), so that none
inherits another's allocator state and load from other processes on a shared machine hits all of them alike;
each worker runs ``--warmup`` untimed and ``--reps`` timed runs, with a 2048x2048 matmul reference timed
between them. The median of all timed runs is reported. ``--no-isolate`` interleaves them in one process.

Peak memory is the peak of bytes held by torch's allocator during one run above what was held
before it: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the running total that torch's
profiler records on every allocation and free (``profile_memory=True``, "Total Allocated"), taken
in a separate, untimed run. It counts tensors (activations, gradients, workspaces), not the
allocator's or the process's overhead.

Examples::

    python tools/benchmark.py matmul
    python tools/benchmark.py backbone --arch pvt_v2_b2 --shape 800 1216 --batch 1 --reps 3
    python tools/benchmark.py backbone --arch pvt_small --shape 224 224 --batch 32 --mode infer
    python tools/benchmark.py backbone --arch pvt_v2_b2 --shape 512 640 --with-cp --impl ours
    python tools/benchmark.py detector --shape 800 1216 --reps 3
    python tools/benchmark.py backbone --arch pvt_v2_b2 --device cuda --dtype bf16
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from pvt_det.cli import ToolError, cli_main  # noqa: E402

# name -> (family, width of stage 1 per head, depths, mlp ratios, linear SRA); official whai362 table.
PVT_ARCHS = {
    'pvt_tiny': (1, 64, (2, 2, 2, 2), (8, 8, 4, 4), False),
    'pvt_small': (1, 64, (3, 4, 6, 3), (8, 8, 4, 4), False),
    'pvt_medium': (1, 64, (3, 4, 18, 3), (8, 8, 4, 4), False),
    'pvt_large': (1, 64, (3, 8, 27, 3), (8, 8, 4, 4), False),
    'pvt_v2_b0': (2, 32, (2, 2, 2, 2), (8, 8, 4, 4), False),
    'pvt_v2_b1': (2, 64, (2, 2, 2, 2), (8, 8, 4, 4), False),
    'pvt_v2_b2': (2, 64, (3, 4, 6, 3), (8, 8, 4, 4), False),
    'pvt_v2_b2_li': (2, 64, (3, 4, 6, 3), (8, 8, 4, 4), True),
    'pvt_v2_b3': (2, 64, (3, 4, 18, 3), (8, 8, 4, 4), False),
    'pvt_v2_b4': (2, 64, (3, 8, 27, 3), (8, 8, 4, 4), False),
    'pvt_v2_b5': (2, 64, (3, 6, 40, 3), (4, 4, 4, 4), False),
}
HEADS, SR_RATIOS = (1, 2, 5, 8), (8, 4, 2, 1)
# name -> (embed dims, heads, depths); Microsoft's CvT table.
CVT_ARCHS = {
    'cvt_13': ((64, 192, 384), (1, 3, 6), (1, 2, 10)),
    'cvt_21': ((64, 192, 384), (1, 3, 6), (1, 4, 16)),
    'cvt_w24': ((192, 768, 1024), (3, 12, 16), (2, 2, 20)),
}
ALL_ARCHS = [*PVT_ARCHS, *CVT_ARCHS]
IMPLS = ('ours', 'mmdet', 'hf')
MMDET_RETINANET_PVT_S = 'mmdet::pvt/retinanet_pvt-s_fpn_1x_coco.py'
MATMUL_N = 2048  # the fp32 reference: a 2048x2048 matrix product
OUR_RETINANET_PVT_S = 'configs/retinanet_pvt_small_fpn.py'


class BenchmarkError(ToolError):
    """A problem with the request (unknown arch, missing config)."""


# ----------------------------------------------------------------------------- weights and models
def perturb_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and buffer distinct values (LayerNorm weights too), so a key loaded into
    the wrong place shows up as an output mismatch."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point():
                continue
            if 'running_var' in name:
                t.copy_(1 + 0.1 * torch.rand(t.shape, generator=gen))
            elif t.dim() == 1 and ('norm' in name or 'bn' in name.lower()) and name.endswith('weight'):
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=gen))
            else:
                fan_in = t[0].numel() if t.dim() > 1 else 50
                t.copy_(torch.randn(t.shape, generator=gen) / fan_in ** 0.5)
    return model


def hf_pvt_model(arch: str) -> torch.nn.Module:
    """Hugging Face model of ``arch`` (random weights). v2 returns all four stage maps."""
    import transformers as tf
    family, width, depths, mlp_ratios, linear = PVT_ARCHS[arch]
    common = dict(depths=list(depths), hidden_sizes=[width * h for h in HEADS], mlp_ratios=list(mlp_ratios),
                  num_attention_heads=list(HEADS), drop_path_rate=0.0)
    if family == 1:
        return tf.PvtModel(tf.PvtConfig(sequence_reduction_ratios=list(SR_RATIOS), **common))
    cfg = tf.PvtV2Config(sr_ratios=list(SR_RATIOS), linear_attention=linear,
                         out_features=['stage1', 'stage2', 'stage3', 'stage4'], **common)
    return tf.PvtV2Backbone(cfg)


def hf_cvt_model(arch: str) -> torch.nn.Module:
    import transformers as tf
    dims, heads, depths = CVT_ARCHS[arch]
    return tf.CvtModel(tf.CvtConfig(embed_dim=list(dims), num_heads=list(heads), depth=list(depths),
                                    drop_path_rate=[0.0, 0.0, 0.0]), add_pooling_layer=False)


def hf_to_official_pvt(state: dict) -> dict:
    """Hugging Face PVT keys -> the official whai362 layout (which mmdet's ``pvt_convert`` reads)."""
    import re
    out = {}
    stage_rules = [  # (HF pattern, official replacement); applied to the part after the stage/block index
        ('layer_norm_1.', 'norm1.'), ('layer_norm_2.', 'norm2.'), ('mlp.dense1.', 'mlp.fc1.'),
        ('mlp.dense2.', 'mlp.fc2.'), ('mlp.dwconv.dwconv.', 'mlp.dwconv.dwconv.'),
        ('attention.self.sequence_reduction.', 'attn.sr.'), ('attention.spatial_reduction.', 'attn.sr.'),
        ('attention.self.layer_norm.', 'attn.norm.'), ('attention.layer_norm.', 'attn.norm.'),
        ('attention.output.dense.', 'attn.proj.'), ('attention.proj.', 'attn.proj.'),
        ('attention.self.query.', 'attn.q.'), ('attention.query.', 'attn.q.'),
    ]
    for key, value in state.items():
        key = key.removeprefix('pvt.').removeprefix('pvt_v2.')
        m = (re.match(r'encoder\.block\.(\d+)\.(\d+)\.(.*)', key)
             or re.match(r'encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.*)', key))
        if m:
            stage, block, rest = int(m[1]) + 1, m[2], m[3]
            if 'key.' in rest:  # k and v are one `kv` linear in the official code
                value = torch.cat([value, state[key.replace('key.', 'value.')]])
                rest = 'attn.kv.' + rest.rsplit('.', 1)[1]
            elif 'value.' in rest:
                continue
            for pattern, repl in stage_rules:
                rest = rest.replace(pattern, repl)
            out[f'block{stage}.{block}.{rest}'] = value
            continue
        m = (re.match(r'encoder\.patch_embeddings\.(\d+)\.(.*)', key)
             or re.match(r'encoder\.layers\.(\d+)\.patch_embedding\.(.*)', key))
        if m:
            stage, rest = int(m[1]) + 1, m[2]
            if rest == 'position_embeddings':
                out[f'pos_embed{stage}'] = value
            elif rest == 'cls_token':
                out['cls_token'] = value
            else:
                rest = rest.replace('projection.', 'proj.').replace('layer_norm.', 'norm.')
                out[f'patch_embed{stage}.{rest}'] = value
            continue
        m = re.match(r'encoder\.layers\.(\d+)\.layer_norm\.(.*)', key)
        if m:
            out[f'norm{int(m[1]) + 1}.{m[2]}'] = value
        elif key.startswith('encoder.layer_norm.'):
            out['norm.' + key.rsplit('.', 1)[1]] = value
        else:
            raise KeyError(f'unexpected Hugging Face PVT key {key}')
    return out


class Impl:
    """One implementation of a backbone: a module and how to run it (outputs -> list of tensors)."""

    def __init__(self, name: str, model: torch.nn.Module, run: Callable | None = None):
        self.name, self.model = name, model
        self.run = run or (lambda x: list(model(x)))


def build_backbones(arch: str, impls: list[str], tmpdir: str, with_cp: bool = False,
                    shape: tuple[int, int] | None = None) -> list[Impl]:
    """Every requested implementation of ``arch`` holding the same (random) weights, for inputs of
    ``shape`` (only Hugging Face's PVT v1 needs to know it, see ``resize_hf_pos_embeds_``)."""
    if arch not in ALL_ARCHS:
        raise BenchmarkError(f'unknown --arch {arch!r}; choose one of {", ".join(ALL_ARCHS)}')
    is_cvt = arch in CVT_ARCHS
    torch.manual_seed(0)
    hf = perturb_(hf_cvt_model(arch) if is_cvt else hf_pvt_model(arch)).eval()
    hf_path = osp.join(tmpdir, f'{arch}_hf.pth')
    torch.save(hf.state_dict(), hf_path)
    built = []
    for impl in impls:
        if impl == 'hf':
            if is_cvt:  # every stage's map (NCHW)
                built.append(Impl('hf', hf, lambda x, m=hf: list(m(x, output_hidden_states=True).hidden_states)))
            elif PVT_ARCHS[arch][0] == 1:  # PvtModel: the token sequence after each stage's last block
                if shape is not None:
                    resize_hf_pos_embeds_(hf, shape)
                ends = torch.tensor(PVT_ARCHS[arch][2]).cumsum(0) - 1
                built.append(Impl('hf', hf, lambda x, m=hf, ends=ends: [
                    m(x, output_hidden_states=True).hidden_states[i] for i in ends]))
            else:
                built.append(Impl('hf', hf, lambda x, m=hf: list(m(x).feature_maps)))
        elif impl == 'mmdet':
            if is_cvt or PVT_ARCHS[arch][4]:
                print(f'[skip] mmdet has no {arch}', file=sys.stderr)
                continue
            built.append(Impl('mmdet', build_mmdet_pvt(arch, hf)))
        elif impl == 'ours':
            built.append(Impl('ours', build_ours(arch, hf_path, with_cp)))
        else:
            raise BenchmarkError(f'unknown --impl {impl!r}; choose from {", ".join(IMPLS)}')
    return built


def resize_hf_pos_embeds_(hf: torch.nn.Module, shape: tuple[int, int]) -> None:
    """Resize HF PvtModel's position embeddings to the token grids of an ``shape`` input, as every
    PVT v1 does per input size (bilinear from the stored grid, cls row kept as is).

    HF's own ``interpolate_pos_encoding`` reshapes the stored embedding with the *target* grid and
    so crashes at any size but 224; with the embeddings resized beforehand its interpolation is an
    identity, still computed on every forward, and its outputs equal the others'.
    """
    import torch.nn.functional as F
    h, w = shape[0] // 4, shape[1] // 4
    with torch.no_grad():
        for stage, embed in enumerate(hf.encoder.patch_embeddings):
            if stage:
                h, w = h // 2, w // 2
            pos = embed.position_embeddings
            cls, grid = (pos[:, :1], pos[:, 1:]) if embed.cls_token is not None else (pos[:, :0], pos)
            side = int(grid.shape[1] ** 0.5)
            grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode='bilinear').flatten(2).transpose(1, 2)
            embed.position_embeddings = torch.nn.Parameter(torch.cat([cls, grid], 1))


def build_mmdet_pvt(arch: str, hf: torch.nn.Module) -> torch.nn.Module:
    """mmdet's PyramidVisionTransformer(V2) holding ``hf``'s weights, converted by mmdet's own
    ``pvt_convert`` from the official layout and loaded strictly (its init_weights loads non-strictly)."""
    from mmdet.models.backbones.pvt import PyramidVisionTransformer, PyramidVisionTransformerV2, pvt_convert
    family, width, depths, mlp_ratios, _ = PVT_ARCHS[arch]
    cls = PyramidVisionTransformer if family == 1 else PyramidVisionTransformerV2
    model = cls(embed_dims=width, num_layers=list(depths), num_heads=list(HEADS), mlp_ratios=list(mlp_ratios),
                sr_ratios=list(SR_RATIOS), drop_path_rate=0.0)
    model.load_state_dict(pvt_convert(hf_to_official_pvt(hf.state_dict())), strict=True)
    return model.eval()


def build_ours(arch: str, checkpoint: str, with_cp: bool = False) -> torch.nn.Module:
    """Our backbone loading a Hugging Face checkpoint through its ``init_cfg`` (layout auto-detected)."""
    from pvt_det.models.backbones import pvt as pvt_module
    init_cfg = dict(type='Pretrained', checkpoint=checkpoint)
    if arch in CVT_ARCHS:
        from pvt_det.models.backbones.cvt import CvT
        # Hugging Face's CvT uses GELU where the official one (our default) uses QuickGELU: same math here.
        model = CvT(arch=arch.split('_', 1)[1], out_indices=(0, 1, 2), act_cfg=dict(type='GELU'), init_cfg=init_cfg)
    else:
        cls = pvt_module.PVT if PVT_ARCHS[arch][0] == 1 else pvt_module.PVTv2
        model = cls(arch=short_arch(arch), drop_path_rate=0.0, with_cp=with_cp, init_cfg=init_cfg)
    model.init_weights()
    return model.eval()


def short_arch(arch: str) -> str:
    """'pvt_small' -> 'small', 'pvt_v2_b2_li' -> 'b2_li'."""
    return arch.removeprefix('pvt_v2_').removeprefix('pvt_')


def output_differences(impls: list[Impl], x: torch.Tensor) -> dict[str, float]:
    """Max relative difference of every other implementation's stage maps from the first one's.

    Hugging Face's PVT v1 (like the official classifier) attends over the cls token in stage 4,
    which detection backbones drop, so its stage 4 is not compared.
    """
    with torch.inference_mode():
        outs = {impl.name: impl.run(x) for impl in impls}
    ref_name, ref = next(iter(outs.items()))
    diffs = {}
    for name, maps in list(outs.items())[1:]:
        stage_diffs = []
        for a, b in zip(ref, maps):
            if b.dim() == 3:  # HF tokens (N, L, C) -> NCHW like ours
                if b.shape[1] != a.shape[-2] * a.shape[-1]:
                    continue  # stage 4 with a cls token
                b = b.transpose(1, 2).reshape(a.shape)
            stage_diffs.append(((a.float() - b.float()).abs().max() / a.float().abs().max()).item())
        diffs[name] = max(stage_diffs)
    return diffs


# ----------------------------------------------------------------------------- measurement
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
    """Multiply-adds (G) of our backbone for one image, attention matmuls included (tools/get_flops.py)."""
    try:
        from get_flops import count_flops
        model = build_ours_random(arch)
        return count_flops(model, (3, *shape))[0] / 1e9
    except Exception as e:  # FLOPs are an extra column; the timings stand without them
        print(f'[warn] no FLOP count: {e}', file=sys.stderr)
        return None


def build_ours_random(arch: str) -> torch.nn.Module:
    from pvt_det.models.backbones import pvt as pvt_module
    if arch in CVT_ARCHS:
        from pvt_det.models.backbones.cvt import CvT
        return CvT(arch=arch.split('_', 1)[1], out_indices=(0, 1, 2)).eval()
    cls = pvt_module.PVT if PVT_ARCHS[arch][0] == 1 else pvt_module.PVTv2
    return cls(arch=short_arch(arch)).eval()


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


def fmt(seconds: float) -> str:
    return f'{seconds * 1e3:.0f} ms' if seconds < 10 else f'{seconds:.1f} s'


# ----------------------------------------------------------------------------- commands
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
                result = subprocess.run(worker_argv, capture_output=True, text=True)
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
    """This script with the parent's own arguments, timing only ``name`` and writing to ``out``."""
    argv = [sys.executable, osp.abspath(__file__), *args.argv, '--only', name, '--worker-out', out]
    if args.command == 'backbone':
        argv.append('--memory' if memory else '--no-memory')
    if with_matmul:
        argv.append('--worker-matmul')
    return argv


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


def print_backbone(results: dict) -> None:
    print(f"# {results['arch']} {results['shape'][0]}x{results['shape'][1]} batch {results['batch']} "
          f"{results['device']} {results['dtype']}{' with_cp' if results['with_cp'] else ''}")
    print(f"# {results['machine']}")
    if results.get('matmul_gflops'):
        rates = ', '.join(f'{rate:.0f} GFLOP/s ({mode} rounds)' for mode, rate in results['matmul_gflops'].items())
        print(f"# {results['dtype']} 2048x2048 matmul, timed in the same rounds: {rates}; "
              f"ours {results['gmacs_per_image']:.1f} GMACs/image")
    by_mode = {}
    for row in results['rows']:
        by_mode.setdefault(row['mode'], {})[row['impl']] = row
    # "ceiling": the largest speed-up over that row that any implementation of the same FLOPs could reach,
    # i.e. one running entirely at the matmul's throughput (1 / its "% of matmul").
    print('| mode | impl | median | images/s | speed-up of ours | peak MiB | % of matmul | ceiling |')
    print('|---|---|---|---|---|---|---|---|')
    for mode, rows in by_mode.items():
        ours = rows.get('ours')
        for name, row in rows.items():
            ratio = f"{row['median_s'] / ours['median_s']:.2f}x" if ours and name != 'ours' else ''
            peak = f"{row['peak_mib']:.0f}" if row.get('peak_mib') is not None else ''
            fraction = row.get('matmul_fraction')
            frac = f'{100 * fraction:.0f}%' if fraction else ''
            ceiling = f'{1 / fraction:.2f}x' if fraction and name != 'ours' else ''
            print(f"| {mode} | {name} | {fmt(row['median_s'])} | {row['images_per_s']:.2f} | {ratio} | "
                  f'{peak} | {frac} | {ceiling} |')


def load_detector_cfg(path: str):
    from mmengine.config import Config
    if path.startswith('mmdet::'):  # a config shipped inside the mmdet package
        import mmdet
        path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', path[len('mmdet::'):])
    if not osp.exists(path):
        raise BenchmarkError(f'config {path} not found; pass an existing config file to --config/--ref-config')
    return Config.fromfile(path)


def build_detector(path: str) -> torch.nn.Module:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = load_detector_cfg(path)
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.backbone.pop('pretrained', None)
    return MODELS.build(cfg.model)


def detector_batch(shape: tuple[int, int], num_boxes: int = 5, seed: int = 0) -> dict:
    """One image and its boxes, in the form the data preprocessor takes."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(seed)
    h, w = shape
    image = torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
    xy = torch.rand(num_boxes, 2, generator=gen) * torch.tensor([w * 0.6, h * 0.6])
    wh = 32 + torch.rand(num_boxes, 2, generator=gen) * torch.tensor([w * 0.3, h * 0.3])
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                         scale_factor=(1.0, 1.0), batch_input_shape=(h, w)))
    sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                       labels=torch.randint(0, 80, (num_boxes,), generator=gen))
    return dict(inputs=[image], data_samples=[sample])


def detector_steps(args) -> dict[str, dict[str, Callable[[], None]]]:
    """``{mode: {'ours'|'mmdet': step}}``: a train iteration (forward, loss, backward, AdamW step) or an
    inference (``test_step``) of the two detector configs, holding the same weights."""
    torch.manual_seed(0)  # neck and head: the same random initialisation in every worker process
    with tempfile.TemporaryDirectory() as tmpdir:
        arch = args.arch
        ours = build_detector(args.config)
        ref = build_detector(args.ref_config)
        # Same weights: backbones via the HF->official->mmdet path, neck and head copied (same classes).
        backbones = {b.name: b.model for b in build_backbones(arch, ['ours', 'mmdet'], tmpdir)}
        ours.backbone.load_state_dict(backbones['ours'].state_dict())
        ref.backbone.load_state_dict(backbones['mmdet'].state_dict())
        rest = {k: v for k, v in ours.state_dict().items() if not k.startswith('backbone.')}
        missing = ref.load_state_dict(rest, strict=False)
        if [k for k in missing.missing_keys if not k.startswith('backbone.')] or missing.unexpected_keys:
            raise BenchmarkError(f'neck/head of {args.config} and {args.ref_config} differ: {missing}')
    data = detector_batch(tuple(args.shape))
    models = {'ours': ours.to(args.device), 'mmdet': ref.to(args.device)}
    optims = {n: torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=1e-4) for n, m in models.items()}

    def train_step(name):
        model, optim = models[name], optims[name]

        def step():
            model.train()
            batch = model.data_preprocessor(copy.deepcopy(data), True)
            with autocast(args.device, args.dtype):
                losses = model(**batch, mode='loss')
            loss, _ = model.parse_losses(losses)
            loss.backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
        return step

    def infer_step(name):
        model = models[name]

        def step():
            model.eval()
            with torch.inference_mode(), autocast(args.device, args.dtype):
                model.test_step(copy.deepcopy(data))
        return step

    return {mode: {name: make(name) for name in models}
            for mode, make in (('infer', infer_step), ('train', train_step)) if mode in args.mode}


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


def print_detector(results: dict) -> None:
    print(f"# detector {results['config']} vs {results['ref_config']} "
          f"{results['shape'][0]}x{results['shape'][1]} batch 1")
    print(f"# {results['machine']}")
    print('| mode | impl | median | speed-up of ours |')
    print('|---|---|---|---|')
    medians = {(r['mode'], r['impl']): r['median_s'] for r in results['rows']}
    for row in results['rows']:
        ours = medians.get((row['mode'], 'ours'))
        ratio = f"{row['median_s'] / ours:.2f}x" if ours and row['impl'] != 'ours' else ''
        print(f"| {row['mode']} | {row['impl']} | {fmt(row['median_s'])} | {ratio} |")


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
    for p in (bb, det, mm):
        p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
        p.add_argument('--dtype', default='fp32', choices=('fp32', 'bf16'), help='bf16 = autocast')
        p.add_argument('--threads', type=int, help='torch threads (default: torch default)')
        p.add_argument('--json', help='also write the results here')
    for p in (bb, det):
        p.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'))
        p.add_argument('--reps', type=positive_int, default=3,
                       help='timed runs per implementation (per worker process with --isolate); median reported')
        p.add_argument('--warmup', type=int, default=1)
        p.add_argument('--mode', nargs='+', default=['infer', 'train'], choices=('infer', 'train'))
        p.add_argument('--isolate', action=argparse.BooleanOptionalAction, default=True,
                       help='time every implementation in processes of its own (default), --rounds of them '
                       'each, alternating; --no-isolate interleaves them in this process')
        p.add_argument('--rounds', type=positive_int, default=3, help='worker processes per implementation (--isolate)')
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
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what worker processes are started with
    return args


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
    elif args.worker_out:
        run_worker(args)
        return 0
    elif args.command == 'backbone':
        results = run_backbone(args)
        print_backbone(results)
    else:
        results = run_detector(args)
        print_detector(results)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
