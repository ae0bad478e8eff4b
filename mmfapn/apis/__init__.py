# High-level entry points: a model built for inference from a config
# (inference), and the smoke run of a config on toy data (smoke_*).
from .inference import (Prediction, build_model, build_model_cfg,
                        config_scope, drop_pretrained, load_model, predict,
                        read_config)
from .smoke_data import dataset_kind, point_config_at, write_toy_dataset
from .smoke_run import prepare_smoke_config, smoke_run, summary_lines

__all__ = [
    'Prediction', 'build_model', 'build_model_cfg', 'config_scope',
    'drop_pretrained', 'load_model', 'predict', 'read_config', 'dataset_kind',
    'point_config_at', 'write_toy_dataset', 'prepare_smoke_config',
    'smoke_run', 'summary_lines'
]
