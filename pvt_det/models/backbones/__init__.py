from .pvt import PVT, PVTv2  # noqa: F401
from .cvt import CvT  # noqa: F401
