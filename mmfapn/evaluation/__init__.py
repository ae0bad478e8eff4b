# Metrics (mmseg/mmdet METRICS registries). Each module must import cleanly
# when only one of mmdet/mmseg is installed.
try:  # boundary mIoU (registered in mmseg's METRICS when mmseg is present)
    from .boundary_iou import (BoundaryIoUMetric, boundary_bands,
                               boundary_intersect_and_union)
except ImportError:  # pragma: no cover
    pass
