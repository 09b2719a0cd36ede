"""mmseg decode heads for pvt_det backbones (registered in mmseg's MODELS on import)."""
from .glpn_head import GLPNHead  # noqa: F401
from .segformer_mlp_head import SegformerMLPHead  # noqa: F401
