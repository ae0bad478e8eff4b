# High-level entry points: the smoke run of a config on toy data.
from .smoke_data import dataset_kind, point_config_at, write_toy_dataset
from .smoke_run import prepare_smoke_config, smoke_run, summary_lines

__all__ = [
    'dataset_kind', 'point_config_at', 'write_toy_dataset',
    'prepare_smoke_config', 'smoke_run', 'summary_lines'
]
