"""pvt_det: PVT v1/v2 and CvT backbones for mmdetection and mmsegmentation.

Importing the package applies the stack compatibility fixes and registers every
backbone in both ``mmdet.registry.MODELS`` and ``mmseg.registry.MODELS``.
"""
from . import compat

compat.apply()

from . import models  # noqa: E402,F401  (registers the backbones)
from . import engine  # noqa: E402,F401  (registers SafeCheckpointHook, FiniteLossHook, resumable loops)

__version__ = '0.1.0'
