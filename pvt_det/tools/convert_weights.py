"""Rewrite a checkpoint into pvt_det's layout (a classifier or backbone file, or a whole detector/segmentor), or
write one in another project's layout.

    python tools/convert_weights.py SRC DST [--to {ours,official,mmdet,hf,timm}] [--arch pvt_v2_b2]
                                    [--backbone-only] [--overwrite]

SRC may be an official whai362 release (classification, detection or Semantic FPN), a Hugging Face
``.bin``/``.safetensors``, a timm or mmdet checkpoint, or ours; the layout and (without ``--arch``) the
architecture are detected. A detector/segmentor keeps its neck, heads and ``meta``; ``--backbone-only`` writes just
the backbone, for ``init_cfg=dict(type='Pretrained', checkpoint=DST)``. DST ending in ``.safetensors`` writes
safetensors (classifier and backbone files).

``--to`` other than ``ours`` writes SRC's model for elsewhere: ``official`` (whai362/PVT, NVlabs/SegFormer,
microsoft/CvT release keys), ``mmdet`` (mmdet's PVT backbones), ``timm`` (a state dict timm's ``pvt_v2_*`` loads
strictly) or ``hf`` (a directory ``transformers.AutoModel.from_pretrained(DST)`` loads: PvtV2Model, SegformerModel
for MiT, CvtModel, PvtModel, or their ...ForImageClassification for a classifier file). Each is loaded back and
its stage maps compared with the source's before it is kept; of a detector/segmentor only the backbone is
written, and the rest is named.
"""
from __future__ import annotations

import argparse
import sys

from pvt_det.cli import ToolError, cli_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='source checkpoint file (or URL)')
    parser.add_argument('dst', help='destination file (.pth, or .safetensors)')
    parser.add_argument('--arch',
                        help='classifier name, e.g. pvt_small or pvt_v2_b2 (default: detect)')
    parser.add_argument('--backbone-only', action='store_true',
                        help='write only the backbone (of a classifier or a trained detector/segmentor), '
                        "loadable by init_cfg=dict(type='Pretrained', checkpoint=DST)")
    parser.add_argument('--overwrite', action='store_true', help='replace DST if it exists')
    parser.add_argument('--to', default='ours', choices=['ours', 'official', 'mmdet', 'hf', 'timm'],
                        help='layout to write (default: ours); hf writes a directory')
    parser.add_argument('--cvt-act', choices=['quick_gelu', 'gelu'],
                        help="CvT only: the MLP activation the weights were trained with (default: the official "
                        "QuickGELU; gelu for a CvT built with act_cfg=dict(type='GELU'))")
    return parser.parse_args(argv)


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pvt_det.models.conversion import convert_checkpoint_file
    backbone_kwargs = {}
    if args.cvt_act and args.to == 'ours':
        raise ToolError('--cvt-act says which activation an exported CvT computes; it has no effect with --to ours '
                        '(pvt_det files keep no activation): drop it, or pass --to hf')
    if args.cvt_act:
        backbone_kwargs['act_cfg'] = dict(type='GELU' if args.cvt_act == 'gelu' else 'QuickGELU')
    report = convert_checkpoint_file(args.src, args.dst, args.arch, overwrite=args.overwrite,
                                     backbone_only=args.backbone_only, to=args.to, backbone_kwargs=backbone_kwargs)
    arch = report.arch or 'custom arch'
    if args.to == 'ours':
        print(f'wrote {report.path}: {report.kind} checkpoint ({arch}), {len(report.keys)} tensors, backbone '
              f'converted from {args.src} ({report.layout} layout)')
        note = _unrecorded_norm_eps(report.layout, report.path, args.src)
        if note:
            print(note)
        return 0
    print(f'wrote {report.path}: {report.written_as} ({report.kind} of {arch}), {len(report.keys)} tensors, from '
          f'{args.src} ({report.layout} layout); loaded back, its stage maps are within {report.max_rel_diff:.1e} '
          f'(relative) of the source model\'s')
    if report.left_out:
        print(f'left out (not part of the backbone): {_summary(report.left_out)}')
    return 0


def _unrecorded_norm_eps(source_layout: str, dst: str, src: str) -> str | None:
    """A note when the source's code computed with other LayerNorm eps than pvt_det's: a file in pvt_det's layout
    does not record them, while loading ``src`` itself converts it in the model with its eps."""
    from pvt_det.models.checkpoint import registered_layouts
    from pvt_det.models.layers import BLOCK_NORM_EPS, EMBED_NORM_EPS
    family, name = source_layout.split('/', 1)
    layout = next((entry for entry in registered_layouts(family) if entry.name == name), None)
    ours = (BLOCK_NORM_EPS, EMBED_NORM_EPS)
    if layout is None or layout.norm_eps is None or tuple(layout.norm_eps) == ours:
        return None
    return (f'note: the {name} code computed these weights with LayerNorm eps {layout.norm_eps[0]:g} (blocks) and '
            f'{layout.norm_eps[1]:g} (patch embedding, spatial reduction); {dst} does not record them, so a model '
            f'loading it computes with {ours[0]:g} and {ours[1]:g}. To compute exactly what they computed, load '
            f'{src} itself (init_cfg or load_from: converted in the model, with its eps)')


def _summary(keys: list[str]) -> str:
    """``neck (12 tensors), bbox_head (20 tensors)``: the left-out keys by their top-level module."""
    counts: dict[str, int] = {}
    for key in keys:
        counts[key.split('.', 1)[0]] = counts.get(key.split('.', 1)[0], 0) + 1
    return ', '.join(f'{name} ({count} tensor{"s" if count > 1 else ""})'
                     for name, count in sorted(counts.items()))


if __name__ == '__main__':
    sys.exit(main())
