"""Paired-seed statistics of the demo: mean, sample standard deviation and
a Student-t confidence interval of the paired difference, and the verdict
sentence that follows from the intervals.

For K seeds, each seed trains both models with the same backbone
initialisation and data order, so the per-seed differences
``d_k = b_k - a_k`` are the paired sample.  The interval is
``mean(d) +- t_{1-alpha/2, K-1} * std(d) / sqrt(K)`` with the sample
standard deviation (``ddof=1``).
"""
import math
from dataclasses import asdict, dataclass
from typing import Dict, Sequence

from scipy import stats as _scipy_stats

BETTER = 'better'
WORSE = 'worse'
NO_DIFFERENCE = 'no significant difference'
UNDECIDED = 'no interval'


@dataclass
class Interval:
    """Mean of ``n`` values with its two-sided Student-t interval.

    ``std`` is the sample standard deviation (ddof 1); ``t`` the quantile
    used; ``low``/``high``/``std``/``t`` are NaN when ``n < 2`` (no
    interval from one value).
    """
    n: int
    mean: float
    std: float
    t: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


def mean_std(values: Sequence[float]) -> Dict[str, float]:
    """``{'mean', 'std'}`` (sample std, ddof 1; 0 for one value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError('mean_std: no values')
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return dict(mean=mean, std=0.0)
    var = sum((v - mean)**2 for v in values) / (n - 1)
    return dict(mean=mean, std=math.sqrt(var))


def t_interval(values: Sequence[float],
               confidence: float = 0.95) -> Interval:
    """Two-sided Student-t interval of the mean of ``values``.

    Args:
        values: one number per seed (e.g. paired differences).
        confidence: coverage, in (0, 1). Default 0.95.
    """
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must be in (0, 1), got {confidence!r}')
    values = [float(v) for v in values]
    if not values:
        raise ValueError('t_interval: no values')
    n = len(values)
    ms = mean_std(values)
    if n < 2:
        nan = float('nan')
        return Interval(n, ms['mean'], nan, nan, nan, nan, confidence)
    t = float(_scipy_stats.t.ppf(0.5 + confidence / 2, n - 1))
    half = t * ms['std'] / math.sqrt(n)
    return Interval(n, ms['mean'], ms['std'], t, ms['mean'] - half,
                    ms['mean'] + half, confidence)


def classify(interval: Interval) -> str:
    """``'better'`` if the interval lies above 0, ``'worse'`` below 0,
    ``'no significant difference'`` if it contains 0 (bounds included),
    ``'no interval'`` for one seed."""
    if interval.n < 2:
        return UNDECIDED
    if interval.low > 0:
        return BETTER
    if interval.high < 0:
        return WORSE
    return NO_DIFFERENCE


def _phrase(metric: str, interval: Interval, labels: Sequence[str]) -> str:
    a, b = labels
    kind = classify(interval)
    numbers = (f'{interval.mean:+.2f} points, '
               f'{interval.confidence:.0%} CI [{interval.low:+.2f}, '
               f'{interval.high:+.2f}]')
    if kind == BETTER:
        return f'{b} is better than {a} in {metric} ({numbers})'
    if kind == WORSE:
        return f'{b} is worse than {a} in {metric} ({numbers})'
    return (f'there is no significant difference between {b} and {a} in '
            f'{metric} ({numbers}, which contains 0)')


def verdict(intervals: Dict[str, Interval],
            labels: Sequence[str] = ('FPN', 'FaPN'),
            split: str = 'test') -> str:
    """One sentence that follows from the intervals of the paired
    differences ``labels[1] - labels[0]`` of the metrics in ``intervals``
    (in order, e.g. mIoU and mean bIoU)."""
    if not intervals:
        raise ValueError('verdict: no metrics')
    n = next(iter(intervals.values())).n
    a, b = labels
    if n < 2:
        diffs = ', '.join(f'{m} {iv.mean:+.2f}'
                          for m, iv in intervals.items())
        return (f'One seed gives no interval, so this run cannot say '
                f'whether {b} helps ({b} - {a} on the {split} split: '
                f'{diffs} points); run the default 3 seeds for a verdict.')
    parts = [_phrase(m, iv, labels) for m, iv in intervals.items()]
    text = '; '.join(parts)
    return (f'At this scale, over {n} paired seeds on the {split} split, '
            f'{text}.')
