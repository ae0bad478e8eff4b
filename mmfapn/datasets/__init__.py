from .synthetic import (SyntheticInstance, SyntheticScene, class_colors,
                        render_scene)
from .toy_ade import write_toy_ade
from .toy_cityscapes import write_toy_cityscapes
from .toy_coco import write_toy_coco

__all__ = [
    'render_scene', 'SyntheticScene', 'SyntheticInstance', 'class_colors',
    'write_toy_cityscapes', 'write_toy_ade', 'write_toy_coco'
]
