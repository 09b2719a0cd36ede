"""The architectures the benchmark compares, as each peer implementation spells them."""
from __future__ import annotations

from pvt_det.cli import ToolError

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


class BenchmarkError(ToolError):
    """A problem with the request (unknown arch, missing config)."""


def check_arch(arch: str) -> str:
    if arch not in ALL_ARCHS:
        raise BenchmarkError(f'unknown --arch {arch!r}; choose one of {", ".join(ALL_ARCHS)}')
    return arch


def short_arch(arch: str) -> str:
    """'pvt_small' -> 'small', 'pvt_v2_b2_li' -> 'b2_li'."""
    return arch.removeprefix('pvt_v2_').removeprefix('pvt_')


def has_mmdet_peer(arch: str) -> bool:
    """mmdet ships PVT v1 and v2, but neither the linear-SRA variant nor CvT."""
    return arch in PVT_ARCHS and not PVT_ARCHS[arch][4]
