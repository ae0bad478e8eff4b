from .synthetic import (SyntheticInstance, SyntheticScene, class_colors,
                        render_scene)

__all__ = [
    'render_scene', 'SyntheticScene', 'SyntheticInstance', 'class_colors'
]
