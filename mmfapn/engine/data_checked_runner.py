"""The runner of every mmfapn config: mmengine's Runner with dataset and
annotation file checks (and, from :class:`ExactResumeRunner`, exact
resumption and the checkpoint hardening).

The shared fragment ``configs/_base_/mmfapn.py`` sets ``runner_type =
'DataCheckedRunner'`` for the mmdet and the mmseg configs alike (model
configs leave the runner alone), so ``mim train`` / ``mim test`` (mmdet's
and mmseg's ``tools/train.py`` / ``test.py``, which build
``cfg.runner_type`` from ``RUNNERS``) and mmfapn's own tools use it.
"""
from typing import Dict, List, Optional, Union

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmfapn.datasets.file_checks import (check_dataset_paths,
                                         check_evaluator_paths,
                                         diagnose_dataset_files,
                                         diagnose_evaluator_files)

from .exact_resume_runner import ExactResumeRunner


@RUNNERS.register_module()
class DataCheckedRunner(ExactResumeRunner):
    """A Runner whose dataloaders and evaluators name the bad file when
    their data is missing or malformed; otherwise an
    :class:`~mmfapn.engine.exact_resume_runner.ExactResumeRunner`
    (mmengine's, plus exact resumption and the checkpoint hardening).

    Before a dataloader (or evaluator) is built, ``data_root``,
    ``ann_file`` and the ``data_prefix`` folders (the metric's
    ``ann_file``/``seg_prefix``) must exist, else ``FileNotFoundError``
    names the path.  If building then fails, the annotation files are
    parsed and, for COCO datasets and metrics, checked for the structure
    mmdet reads; a problem found is raised as ``ValueError`` naming the
    file (chained to the original error).  Parsing happens only on
    failure, so a large COCO JSON is not read twice.  Only the loaders a
    run uses are checked (``mim test`` does not need the training data).

    Registered in mmengine's root ``RUNNERS``, so it is found from the
    mmdet and mmseg scopes.
    """

    @staticmethod
    def build_dataloader(dataloader, seed: Optional[int] = None,
                         diff_rank_seed: bool = False):
        dataset_cfg = dataloader.get('dataset') if isinstance(
            dataloader, dict) else None
        check_dataset_paths(dataset_cfg)
        try:
            return Runner.build_dataloader(
                dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        except Exception as err:
            try:
                diagnose_dataset_files(dataset_cfg)
            except (FileNotFoundError, ValueError) as found:
                raise found from err
            raise

    def build_evaluator(self, evaluator: Union[Dict, List]):
        check_evaluator_paths(evaluator)
        try:
            return super().build_evaluator(evaluator)
        except Exception as err:
            try:
                diagnose_evaluator_files(evaluator)
            except (FileNotFoundError, ValueError) as found:
                raise found from err
            raise
