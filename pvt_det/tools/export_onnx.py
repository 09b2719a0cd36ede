"""Export a backbone (any PVT v1/v2 or CvT variant) to ONNX with dynamic batch, height and width.

The graph takes ``input`` (N, 3, H, W) and returns one NCHW map per ``out_indices`` stage, named
``stage{i}``. PVT v1 resizes its position embeddings inside the graph from their stored grid, so the
file serves any input size. ``--verify`` runs the file with onnxruntime at two sizes and compares with
PyTorch.

The weights come from ``--checkpoint`` (any layout the backbones load, a trained detector's included).
Without it the tool refuses, naming the pretrained file a config points at, unless ``--random-weights``
says that an untrained network is meant (e.g. to time the graph).

Examples::

    python tools/export_onnx.py pvt_v2_b2 pvt_v2_b2.onnx --checkpoint pvt_v2_b2.pth --verify
    python tools/export_onnx.py pvt_small pvt_small.onnx --shape 512 640 --random-weights
    python tools/export_onnx.py configs/retinanet_pvt_v2_b0_fpn.py backbone.onnx \\
        --checkpoint work_dirs/retinanet_pvt_v2_b0_fpn/epoch_12.pth   # the config's backbone, trained
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os.path as osp
import sys
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from pvt_det.cli import ToolError, cli_main
from pvt_det.fileio import atomic_output


class ExportError(ToolError):
    """A bad request (unknown model name, missing file)."""


def build_backbone(name_or_config: str, checkpoint: str | None = None,
                   random_weights: bool = False) -> nn.Module:
    """A backbone from a name ('pvt_small', 'pvt_v2_b2_li', 'cvt_13') or a config's ``model.backbone``,
    with the weights of ``checkpoint``. Without one, ``random_weights=True`` must say that untrained
    weights are meant: exporting them is almost never what a deployment wants."""
    if osp.isfile(name_or_config):
        from mmdet.registry import MODELS
        from mmengine.config import Config
        cfg = Config.fromfile(name_or_config).model.backbone
        # The config's pretrained weights are not loaded: only --checkpoint is.
        pretrained = (cfg.pop('init_cfg', None) or {}).get('checkpoint')
        _check_weights_chosen(checkpoint, random_weights, pretrained)
        model = MODELS.build(cfg)
    else:
        from pvt_det.models.classifiers import build_classifier, classifier_names
        if name_or_config not in classifier_names():  # every registered backbone name, MiT included
            raise ExportError(f'{name_or_config!r} is neither a config file nor a backbone name; '
                              f'names: {", ".join(classifier_names())}')
        _check_weights_chosen(checkpoint, random_weights)
        model = build_classifier(name_or_config, num_classes=0).backbone
    if checkpoint:
        model.init_cfg = dict(type='Pretrained', checkpoint=checkpoint)
        model.init_weights()
    return model.eval()


def _check_weights_chosen(checkpoint: str | None, random_weights: bool, pretrained: str | None = None) -> None:
    """Refuse to export random weights unless asked to, naming the weights a config points at."""
    if checkpoint is not None or random_weights:
        return
    hint = (f"the config's init_cfg names {pretrained}, which the export does not load: pass it, or your "
            'trained checkpoint, as --checkpoint' if pretrained else
            'pass --checkpoint FILE (pretrained or trained weights)')
    raise ExportError(f'no --checkpoint: the backbone would be exported with random weights; {hint}, '
                      'or --random-weights if an untrained network is meant')


class AdaptiveAvgPoolAsMatmul(nn.Module):
    """``AdaptiveAvgPool2d`` as ``rows @ x @ cols^T`` with averaging matrices built from the input size.

    The same windows as torch (start ``floor(i*n/out)``, end ``ceil((i+1)*n/out)``), but traced as
    Range/comparison ops, so the ONNX graph stays correct for any size; torch's own export bakes the
    example input's windows into gather indices (wrong results or a crash at other sizes).
    """

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    @staticmethod
    def averaging_matrix(out: int, size: int, like: torch.Tensor) -> torch.Tensor:
        i = torch.arange(out, device=like.device)
        start = torch.div(i * size, out, rounding_mode='floor')
        end = torch.div((i + 1) * size + out - 1, out, rounding_mode='floor')
        j = torch.arange(size, device=like.device)
        inside = ((j >= start[:, None]) & (j < end[:, None])).to(like.dtype)
        return inside / inside.sum(1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.averaging_matrix(self.output_size[0], x.shape[-2], x)
        cols = self.averaging_matrix(self.output_size[1], x.shape[-1], x)
        return rows @ x @ cols.transpose(0, 1)


def exportable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with the modules whose ONNX export is not size-generic replaced."""
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.AdaptiveAvgPool2d) and None not in (
                (module.output_size,) if isinstance(module.output_size, int) else module.output_size):
            parent_name, _, child = name.rpartition('.')
            setattr(model.get_submodule(parent_name), child, AdaptiveAvgPoolAsMatmul(module.output_size))
    return model


class _TorchvisionOpsNote(logging.Filter):
    """Drops torch.onnx's "torchvision is not installed. Skipping torchvision::<op>" lines (nms, roi_align,
    ...): the exporter registers torchvision's ops up front, a backbone uses none of them, and the user
    can do nothing about it. Any other line of that logger passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.getMessage().startswith('torchvision is not installed. Skipping torchvision::'))


@contextlib.contextmanager
def _without_torchvision_notes() -> Iterator[None]:
    logger, note = logging.getLogger('torch.onnx._internal.exporter._registration'), _TorchvisionOpsNote()
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)


def export(model: nn.Module, path: str, shape: tuple[int, int] = (224, 224), opset: int = 18) -> list[str]:
    """Write ``model`` to ``path`` with dynamic batch/height/width; returns the output names."""
    model = exportable(model)
    example = torch.randn(1, getattr(model, 'in_channels', 3), *shape)
    with torch.no_grad():
        num_outputs = len(model(example))
    out_indices = getattr(model, 'out_indices', range(num_outputs))
    names = [f'stage{i}' for i in out_indices]
    batch, height, width = (torch.export.Dim.DYNAMIC,) * 3
    with warnings.catch_warnings(), _without_torchvision_notes():
        warnings.simplefilter('ignore')
        program = torch.onnx.export(
            model, (example,), input_names=['input'], output_names=names, opset_version=opset,
            dynamic_shapes={'x': {0: batch, 2: height, 3: width}}, dynamo=True, verbose=False)
    with atomic_output(path) as tmp_path:  # a failed export never leaves a truncated .onnx behind
        program.save(tmp_path)
    return names


def run_onnx(path: str, x: torch.Tensor) -> list[torch.Tensor]:
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return [torch.from_numpy(out) for out in session.run(None, {'input': x.numpy()})]


def verify(model: nn.Module, path: str, shapes: list[tuple[int, int]], batch: int = 1) -> float:
    """Max relative difference between onnxruntime and PyTorch over ``shapes`` (and every output)."""
    worst = 0.0
    for shape in shapes:
        x = torch.randn(batch, getattr(model, 'in_channels', 3), *shape)
        with torch.no_grad():
            expected = model(x)
        got = run_onnx(path, x)
        if len(got) != len(expected):
            raise AssertionError(f'onnx gives {len(got)} outputs, PyTorch {len(expected)}')
        for a, b in zip(expected, got):
            if a.shape != b.shape:
                raise AssertionError(f'at {shape}: onnx output {tuple(b.shape)} != PyTorch {tuple(a.shape)}')
            worst = max(worst, ((a - b).abs().max() / a.abs().max()).item())
    return worst


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', help='backbone name (pvt_small, pvt_v2_b2, pvt_v2_b2_li, cvt_13, ...) or config')
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument('--checkpoint', help='weights in any supported layout (official, HF, mmdet, ours)')
    parser.add_argument('--random-weights', action='store_true',
                        help='export without --checkpoint, with untrained random weights (e.g. to time the graph)')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'),
                        help='example input size used for tracing (the graph accepts any size)')
    parser.add_argument('--opset', type=int, default=18)
    parser.add_argument('--verify', action='store_true',
                        help='compare onnxruntime with PyTorch at the example size and at a second size')
    args = parser.parse_args(argv)
    if args.checkpoint and args.random_weights:
        parser.error('--checkpoint and --random-weights exclude each other')
    model = build_backbone(args.model, args.checkpoint, args.random_weights)
    names = export(model, args.out, tuple(args.shape), args.opset)
    weights = args.checkpoint or 'RANDOM, untrained weights (--random-weights)'
    print(f'wrote {args.out}: input (N, 3, H, W) -> {", ".join(names)}; weights: {weights}')
    if args.verify:
        h, w = args.shape
        diff = verify(model, args.out, [(h, w), (h + 32 * max(1, h // 224), w - 32 * max(1, w // 224))])
        print(f'onnxruntime vs PyTorch at two sizes: max relative difference {diff:.1e}')
        if diff > 1e-3:
            raise ToolError(f'the exported graph does not match PyTorch (max relative difference {diff:.1e}); '
                            f'{args.out} is kept for inspection')
    return 0


if __name__ == '__main__':
    sys.exit(main())
