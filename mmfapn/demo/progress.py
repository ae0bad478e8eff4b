"""A one-line-per-interval progress bar with ETA for the demo's runs."""
import sys
import time
from typing import Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def format_seconds(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    seconds = int(round(max(seconds, 0)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f'{h}:{m:02d}:{s:02d}' if h else f'{m}:{s:02d}'


@HOOKS.register_module()
class DemoProgressHook(Hook):
    """Print ``label [#####.....] it/total loss s/it elapsed ETA`` every
    ``interval`` iterations and at the end, and one line for validation.

    Times of training (validation excluded) and of validation are kept in
    :attr:`train_seconds` and :attr:`val_seconds` for the report.

    Args:
        label (str): run name shown at the start of each line.
        interval (int): iterations between lines.
        width (int): characters of the bar.
    """
    priority = 'BELOW_NORMAL'

    def __init__(self, label: str, interval: int = 10,
                 width: int = 24) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.label = label
        self.interval = interval
        self.width = width
        self.train_seconds = 0.0
        self.val_seconds = 0.0
        self._t_iter: Optional[float] = None
        self._t_val: Optional[float] = None

    def _print(self, text: str) -> None:
        print(text, file=sys.stdout, flush=True)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._t_iter = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self._t_iter is not None:
            self.train_seconds += time.perf_counter() - self._t_iter
        done, total = runner.iter + 1, runner.max_iters
        if done % self.interval and done != total:
            return
        per_it = self.train_seconds / max(done, 1)
        filled = int(self.width * done / total)
        bar = '#' * filled + '.' * (self.width - filled)
        loss = ''
        if outputs and 'loss' in outputs:
            value = outputs['loss']
            if hasattr(value, 'detach'):
                value = value.detach()
            loss = f'loss {float(value):.3f}  '
        self._print(f'  {self.label:>5} [{bar}] {done}/{total}  {loss}'
                    f'{per_it:.2f} s/it  elapsed '
                    f'{format_seconds(self.train_seconds)}  ETA '
                    f'{format_seconds(per_it * (total - done))}')

    def before_val_epoch(self, runner) -> None:
        self._t_val = time.perf_counter()
        self._print(f'  {self.label:>5} evaluating on '
                    f'{len(runner.val_dataloader.dataset)} images ...')

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._t_val is not None:
            self.val_seconds += time.perf_counter() - self._t_val
        shown = ', '.join(f'{k} {v:.2f}' for k, v in (metrics or {}).items()
                          if k in ('mIoU', 'bIoU@3', 'bIoU'))
        self._print(f'  {self.label:>5} evaluated in '
                    f'{format_seconds(self.val_seconds)}: {shown}')
