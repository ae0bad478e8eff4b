# Metrics (mmseg/mmdet METRICS registries). Each module must import cleanly
# when only one of mmdet/mmseg is installed.
