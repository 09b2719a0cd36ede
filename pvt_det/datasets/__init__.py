"""Generated stand-ins for COCO, COCO panoptic and ADE20K (see :mod:`pvt_det.datasets.synthetic`)."""
from .synthetic import SHAPE_CLASSES, make_ade20k_dataset, make_coco_dataset
from .synthetic_panoptic import STUFF_CLASSES, make_coco_panoptic_dataset

__all__ = ['SHAPE_CLASSES', 'make_coco_dataset', 'make_ade20k_dataset', 'STUFF_CLASSES',
           'make_coco_panoptic_dataset']
