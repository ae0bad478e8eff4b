"""One progress bar with ETA across all of the demo's runs."""
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def format_seconds(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    seconds = int(round(max(seconds, 0)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f'{h}:{m:02d}:{s:02d}' if h else f'{m}:{s:02d}'


class DemoProgress:
    """The plan of all runs and the time measured so far.

    ``plan`` lists ``(label, iterations)`` per run in order (e.g. FPN and
    FaPN for each seed).  The ETA is the remaining iterations of each run
    at the seconds per iteration measured for that model (for a model not
    run yet, the mean over the models run so far), plus the remaining
    evaluations at the mean evaluation time so far.

    Args:
        plan: ``(label, iterations)`` per run.
        width: characters of the bar.
    """

    def __init__(self, plan: Sequence[Tuple[str, int]],
                 width: int = 30) -> None:
        if not plan:
            raise ValueError('DemoProgress: empty plan')
        self.plan: List[Tuple[str, int]] = [(str(l), int(n))
                                            for l, n in plan]
        self.width = width
        self.run_index = -1
        self.done = [0] * len(self.plan)
        self.train_seconds: Dict[str, float] = {}
        self.train_iters: Dict[str, int] = {}
        self.eval_seconds: List[float] = []
        self.t_start = time.perf_counter()

    @property
    def total_iters(self) -> int:
        return sum(n for _, n in self.plan)

    def start_run(self) -> int:
        """Move to the next run of the plan; returns its index."""
        self.run_index += 1
        if self.run_index >= len(self.plan):
            raise RuntimeError('DemoProgress: more runs than planned')
        return self.run_index

    def add_iter(self, seconds: float) -> None:
        label = self.plan[self.run_index][0]
        self.done[self.run_index] += 1
        self.train_seconds[label] = self.train_seconds.get(label, 0.) + \
            seconds
        self.train_iters[label] = self.train_iters.get(label, 0) + 1

    def add_eval(self, seconds: float) -> None:
        self.eval_seconds.append(seconds)

    def seconds_per_iter(self, label: str) -> Optional[float]:
        if self.train_iters.get(label):
            return self.train_seconds[label] / self.train_iters[label]
        known = [self.train_seconds[k] / self.train_iters[k]
                 for k in self.train_iters if self.train_iters[k]]
        return sum(known) / len(known) if known else None

    def eta(self) -> Optional[float]:
        """Seconds left (None before the first iteration)."""
        left = 0.0
        for i, (label, n) in enumerate(self.plan):
            remaining = n - self.done[i]
            if remaining <= 0:
                continue
            per_it = self.seconds_per_iter(label)
            if per_it is None:
                return None
            left += remaining * per_it
        if self.eval_seconds:
            evals_left = len(self.plan) - len(self.eval_seconds)
            left += evals_left * sum(self.eval_seconds) / len(
                self.eval_seconds)
        return left

    def line(self, extra: str = '') -> str:
        done = sum(self.done)
        total = self.total_iters
        filled = int(self.width * done / total)
        bar = '#' * filled + '.' * (self.width - filled)
        eta = self.eta()
        eta_text = format_seconds(eta) if eta is not None else '?'
        elapsed = format_seconds(time.perf_counter() - self.t_start)
        return (f'[{bar}] {100 * done / total:3.0f}% {done}/{total} it '
                f'{extra}elapsed {elapsed}  ETA {eta_text}')


@HOOKS.register_module()
class DemoProgressHook(Hook):
    """Print the overall bar of a :class:`DemoProgress` every ``interval``
    iterations of one run (and at its end), with the run's name, its own
    iteration count, loss and seconds per iteration; one line per
    evaluation.

    Times of training (evaluation excluded) and of evaluation are kept in
    :attr:`train_seconds` and :attr:`val_seconds` for the report.

    Args:
        label (str): run name shown on each line (e.g. ``'seed 1 FaPN'``).
        interval (int): iterations between lines.
        progress (DemoProgress, optional): the plan this run belongs to
            (None: a plan of this run alone).
        model (str, optional): key of the model in the plan (default
            ``label``).
    """
    priority = 'BELOW_NORMAL'

    def __init__(self, label: str, interval: int = 10,
                 progress: Optional[DemoProgress] = None,
                 model: Optional[str] = None) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.label = label
        self.interval = interval
        self.progress = progress
        self.model = model or label
        self.train_seconds = 0.0
        self.val_seconds = 0.0
        self._t_iter: Optional[float] = None
        self._t_val: Optional[float] = None

    def _print(self, text: str) -> None:
        print(text, file=sys.stdout, flush=True)

    def before_train(self, runner) -> None:
        if self.progress is None:
            self.progress = DemoProgress([(self.model, runner.max_iters)])
        self.progress.start_run()

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._t_iter = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self._t_iter is not None:
            seconds = time.perf_counter() - self._t_iter
            self.train_seconds += seconds
            self.progress.add_iter(seconds)
        done, total = runner.iter + 1, runner.max_iters
        if done % self.interval and done != total:
            return
        per_it = self.train_seconds / max(done, 1)
        loss = ''
        if outputs and 'loss' in outputs:
            value = outputs['loss']
            if hasattr(value, 'detach'):
                value = value.detach()
            loss = f'loss {float(value):.3f}  '
        self._print('  ' + self.progress.line(
            f'| {self.label} {done}/{total}  {loss}{per_it:.2f} s/it | '))

    def before_val_epoch(self, runner) -> None:
        self._t_val = time.perf_counter()
        self._print(f'  {self.label} evaluating on '
                    f'{len(runner.val_dataloader.dataset)} images ...')

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._t_val is not None:
            seconds = time.perf_counter() - self._t_val
            self.val_seconds += seconds
            if self.progress is not None:
                self.progress.add_eval(seconds)
        shown = ', '.join(f'{k} {v:.2f}' for k, v in (metrics or {}).items()
                          if k in ('mIoU', 'bIoU@3', 'bIoU'))
        self._print(f'  {self.label} evaluated in '
                    f'{format_seconds(self.val_seconds)}: {shown}')
