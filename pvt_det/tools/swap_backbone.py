"""Give any mmdet/mmseg model config a pvt_det backbone: writes a short leaf config that says only what
changes, each change with a comment saying why, checks it with pre-flight and prints the changes.

    python tools/swap_backbone.py SRC ARCH --out DST [--keep-optimizer] [--pretrained FILE|URL|none]

SRC is a config path or an installed one (``mmdet::retinanet/retinanet_r50_fpn_1x_coco.py``,
``mmseg::pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py``); ARCH any backbone the package builds
(``pvt_v2_b0``, ``pvt_small``, ``cvt_13``, ``mit_b0``, ...). Exit 1 with one line and nothing written
when the model has no faithful PVT equivalent (docs/swap_resnet.md).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pvt_det.cli import ToolError, cli_main, one_line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pvt_det.config.swap import backbone_names
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('source', metavar='SRC', help='config path, or mmdet::<path> / mmseg::<path>')
    parser.add_argument('arch', metavar='ARCH', choices=list(backbone_names()),
                        help='the new backbone: ' + ', '.join(backbone_names()))
    parser.add_argument('--out', required=True, metavar='DST', help='the leaf config to write (.py)')
    parser.add_argument('--keep-optimizer', action='store_true',
                        help="keep the source's optimizer instead of the PVT papers' AdamW recipe")
    parser.add_argument('--pretrained', metavar='FILE|URL|none',
                        help="backbone weights (default: the arch's ImageNet checkpoint; none: from scratch)")
    return parser.parse_args(argv)


def base_name(source: str, out: Path) -> str:
    """What the leaf's ``_base_`` names: ``mmdet::...`` as given, a file relative to the leaf's folder."""
    if '::' in source:
        return source
    return os.path.relpath(Path(source).resolve(), out.resolve().parent)


def write_swap(args: argparse.Namespace) -> list[str]:
    """Write the leaf config (only once it loads and passes pre-flight); return the lines printed."""
    from mmengine.config import Config
    from pvt_det.config.loading import load_config
    from pvt_det.config.preflight import check_config
    from pvt_det.config.swap import resolve_source, swap_backbone
    out = Path(args.out)
    if out.suffix != '.py':
        raise ToolError(f'--out {out}: write the leaf config to a .py file')
    if not out.resolve().parent.is_dir():
        raise ToolError(f'--out {out}: folder {out.resolve().parent} does not exist')
    try:
        cfg = load_config(resolve_source(args.source))
    except ToolError:
        raise
    except Exception as error:  # noqa: BLE001 - mmengine reading the source: a missing base, a custom import
        raise ToolError(f'{args.source} cannot be read, so nothing was swapped: {one_line(error)}') from None
    swap = swap_backbone(cfg, args.arch, base=base_name(args.source, out),
                         keep_optimizer=args.keep_optimizer, pretrained=args.pretrained)
    draft = out.with_name(f'.{out.stem}.swap-draft.py')  # beside DST: its relative _base_ resolves the same
    try:
        draft.write_text(swap.text)
        written = Config.fromfile(str(draft))
        check_config(written, ())  # widths, strides, heads' inputs, local checkpoint paths
        os.replace(draft, out)
    finally:
        draft.unlink(missing_ok=True)
    return [f'wrote {out}: {args.arch} in place of {cfg.model.backbone.get("type")} ({args.source})'] + \
        [f'  {change.key} = {"dict(...)" if isinstance(change.value, dict) else repr(change.value)}  # {change.why}'
         for change in swap.changes]


@cli_main
def main(argv: list[str] | None = None) -> None:
    print('\n'.join(write_swap(parse_args(argv))))


if __name__ == '__main__':
    sys.exit(main())
