"""Pictures of what a model does, for the analysis tools
(``tools/analysis/vis_alignment.py``, ``tools/analysis/compare_predictions.py``)
and the demo (:mod:`mmfapn.demo`, one client of this package).

- :mod:`.alignment`: the FAM recorder (hooks on every feature alignment
  module) and its displacement statistics;
- :mod:`.alignment_figure`: the paper's Fig. 6 for one image;
- :mod:`.compare`: side-by-side semantic predictions with boundary errors;
- :mod:`.prediction`: a prediction drawn over its image;
- :mod:`.drawing`: the pixel-exact panels and grids all figures are built of.

Not imported by ``import mmfapn``: it draws with OpenCV.
:mod:`.alignment_figure` runs models through :mod:`mmfapn.apis`, which
imports :mod:`.drawing`; so this ``__init__`` imports only the recorder,
and the figure modules are imported by name.
"""
from .alignment import (AlignmentRecord, AlignmentRecorder,
                        displacement_stats, find_feature_align_modules,
                        mean_displacement, reduce_channels)

__all__ = [
    'AlignmentRecord', 'AlignmentRecorder', 'find_feature_align_modules',
    'mean_displacement', 'displacement_stats', 'reduce_channels'
]
