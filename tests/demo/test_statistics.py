"""mmfapn.demo.statistics: the interval against hand calculations and a
t-table, and the verdict in its three cases (and one seed)."""
import math

import pytest

from mmfapn.demo.statistics import (BETTER, NO_DIFFERENCE, UNDECIDED, WORSE,
                                    classify, mean_std, t_interval, verdict)

# Student-t two-sided 95% quantiles t_{0.975, df} from a printed t-table
T_TABLE_975 = {2: 4.303, 3: 3.182, 4: 2.776}


def test_mean_std_by_hand():
    # (1-2)^2 + (2-2)^2 + (4-2)^2 = 5, / (3-1) = 2.5
    assert mean_std([1.0, 2.0, 4.0]) == pytest.approx(
        dict(mean=7 / 3, std=math.sqrt(((1 - 7 / 3)**2 + (2 - 7 / 3)**2 +
                                        (4 - 7 / 3)**2) / 2)))
    assert mean_std([3.0, 5.0]) == dict(mean=4.0, std=math.sqrt(2.0))
    assert mean_std([1.5]) == dict(mean=1.5, std=0.0)
    with pytest.raises(ValueError, match='no values'):
        mean_std([])


@pytest.mark.parametrize('values, mean, std', [
    ([1.0, 2.0, 3.0], 2.0, 1.0),
    # deviations -0.75, 0.25, -0.25, 0.75: sum of squares 1.25, / 3
    ([0.5, 1.5, 1.0, 2.0], 1.25, math.sqrt(1.25 / 3)),
    ([-1.0, 1.0, 3.0, 5.0, 7.0], 3.0, math.sqrt(40 / 4)),
])
def test_interval_is_the_hand_computed_one(values, mean, std):
    iv = t_interval(values)
    n = len(values)
    assert iv.n == n and iv.confidence == 0.95
    assert iv.mean == pytest.approx(mean)
    assert iv.std == pytest.approx(std)
    assert iv.t == pytest.approx(T_TABLE_975[n - 1], abs=5e-4)
    half = iv.t * std / math.sqrt(n)
    assert (iv.low, iv.high) == pytest.approx((mean - half, mean + half))


def test_interval_numbers_for_three_seeds():
    """[1, 2, 3]: mean 2, std 1, t(0.975, 2) = 4.3027 -> 2 -+ 2.4841."""
    iv = t_interval([1.0, 2.0, 3.0])
    assert (iv.low, iv.high) == pytest.approx((-0.4841, 4.4841), abs=1e-4)
    # a 90% interval is narrower: t(0.95, 2) = 2.920
    iv90 = t_interval([1.0, 2.0, 3.0], confidence=0.90)
    assert iv90.t == pytest.approx(2.920, abs=5e-4)
    assert iv90.high - iv90.low < iv.high - iv.low


def test_one_value_has_no_interval():
    iv = t_interval([0.7])
    assert iv.n == 1 and iv.mean == 0.7
    assert math.isnan(iv.low) and math.isnan(iv.high)
    assert iv.to_dict()['low'] is None and iv.to_dict()['mean'] == 0.7
    assert classify(iv) == UNDECIDED
    with pytest.raises(ValueError, match='confidence must be in'):
        t_interval([1.0, 2.0], confidence=1.0)


@pytest.mark.parametrize('miou, biou, kinds, phrases', [
    # both intervals above 0
    ([2.0, 3.0, 4.0], [1.0, 1.5, 2.0], (BETTER, BETTER),
     ['FaPN is better than FPN in mIoU (+3.00 points, 95% CI [+0.52, '
      '+5.48])', 'FaPN is better than FPN in bIoU']),
    # both below 0
    ([-2.0, -3.0, -4.0], [-0.5, -1.0, -0.75], (WORSE, WORSE),
     ['FaPN is worse than FPN in mIoU (-3.00 points, 95% CI [-5.48, '
      '-0.52])', 'FaPN is worse than FPN in bIoU']),
    # mIoU straddles 0, bIoU above
    ([1.0, 2.0, 3.0], [1.0, 1.5, 2.0], (NO_DIFFERENCE, BETTER),
     ['there is no significant difference between FaPN and FPN in mIoU '
      '(+2.00 points, 95% CI [-0.48, +4.48], which contains 0)',
      'FaPN is better than FPN in bIoU']),
])
def test_verdict_follows_the_interval(miou, biou, kinds, phrases):
    ivs = dict(mIoU=t_interval(miou), bIoU=t_interval(biou))
    assert (classify(ivs['mIoU']), classify(ivs['bIoU'])) == kinds
    text = verdict(ivs, ('FPN', 'FaPN'), 'test')
    assert text.startswith('At this scale, over 3 paired seeds on the test '
                           'split, ')
    assert text.endswith('.') and text.count('. ') == 0  # one sentence
    for phrase in phrases:
        assert phrase in text
    others = {BETTER: 'is better than', WORSE: 'is worse than',
              NO_DIFFERENCE: 'no significant difference'}
    for kind, words in others.items():
        assert (words in text) == (kind in kinds), kind


def test_verdict_for_one_seed_makes_no_claim():
    text = verdict(dict(mIoU=t_interval([1.25]), bIoU=t_interval([-0.5])),
                   ('FPN', 'FaPN'), 'test')
    assert text.startswith('One seed gives no interval')
    assert 'mIoU +1.25, bIoU -0.50' in text
    assert 'better' not in text and 'worse' not in text
