"""Markdown report of a FaPN coverage sweep (``docs/coverage.md``)."""
import collections
from typing import Dict, List, Tuple

from mmfapn.analysis import coverage

RERUN = '''## Re-running the sweep

```bash
make coverage                       # resumes work_dirs/coverage/records.jsonl
make coverage COVERAGE_JOBS=4       # 4 worker processes
# or directly, e.g. a subset into another file:
python tools/analysis/fapn_coverage.py --filter 'retinanet|fcos' \\
    --out work_dirs/coverage/subset.jsonl --markdown /tmp/subset.md
python tools/analysis/fapn_coverage.py --report-only   # table only
```

The sweep appends one JSON line per config to its output and skips the
configs already there, so an interrupted run resumes (delete the file, or
pass another `--out`, to start over).  `--jobs N` runs N worker processes
(one torch thread each unless `--threads`); `--timeout` bounds one config.
The sample of `tests/analysis/test_coverage_sample.py` runs 15 of these
configs through the same code in `make test`.
'''

METHOD = '''## What is checked

For every config shipped in mmdet's and mmsegmentation's `.mim/configs`
(`_base_` fragments excluded), the model config is searched for every dict
of `type='FPN'` (also `mmdet.FPN`/`mmseg.FPN`): the neck, an entry of a
neck list (e.g. FPN followed by DyHead or BFP), or a pyramid nested
elsewhere, e.g. the detector inside a distillation or semi-supervised
wrapper.  Each is swapped for FaPN **with the same arguments** (only
`type` changes, as `neck=dict(type='FaPN')` in a child config does), then
on CPU:

* **builds**: the model builds from the registry without any weights and
  `init_weights()` runs; the built model has FaPN and no FPN;
* **loss**: one `loss` on two generated images (96x96 and 93x125, padded
  to 96x128), with boxes, labels, bitmap masks, a semantic map and (for
  detectors without RPN) proposals; the total loss is finite and its
  backward gives every FAM offset/mask conv a finite, non-zero gradient;
* **predict**: one `predict` on two more images (mmdet: 96x96 and 93x125;
  mmseg: two 93x125, its data preprocessor needs equal sizes at test time);
  the results are well formed (one per image; boxes (n, 4) finite with
  x1 <= x2, scores and labels (n,), labels in range, masks (n, H, W) at
  the original size; panoptic (1, H, W); mmseg `pred_sem_seg` (1, H, W)
  and finite `seg_logits`).

Changed in the FaPN and the stock model alike: pretrained weights off
(`init_cfg` of type `Pretrained`, `pretrained`, `teacher_ckpt`), SyncBN ->
BN, the data preprocessor's `batch_augments` dropped (fixed-size padding,
random resizing), mmseg's crop `size` set to the batch's 96x128, at most
64 samples per image in every `train_cfg` sampler (RPN anchors, RoIs), and
in `test_cfg` `score_thr=0` with at most 10 detections per image so that an
untrained model's post-processing and mask paths run.  **params** counts
the whole model, stock FPN -> FaPN.

When the FaPN model fails, the stock FPN model is run the same way.  If it
fails at the same stage with the same exception type (or earlier), the
config is listed apart as not runnable here, with the stock model's error
and a reason; otherwise the failure is FaPN's.  Configs whose model (and
custom imports) are identical, e.g. the 1x/2x/3x schedules of one model,
are run once; the others carry the result (column *run as*).
'''


def _mark(value) -> str:
    return {True: 'yes', False: 'no', None: ''}.get(value, str(value))


def _params(record: dict) -> str:
    fpn, fapn = record.get('params_fpn'), record.get('params_fapn')
    if fpn is None and fapn is None:
        return ''
    fmt = (lambda v: '?' if v is None else f'{v / 1e6:.2f}M')
    delta = '' if None in (fpn, fapn) else f' (+{(fapn - fpn):,})'
    return f'{fmt(fpn)} -> {fmt(fapn)}{delta}'


def _cell(text) -> str:
    return str(text or '').replace('|', '\\|').replace('\n', ' ')


def _short(name: str) -> str:
    return name.split('::', 1)[1] if '::' in name else name


def _run_as(record: dict) -> str:
    same = record.get('same_model_as')
    return f'`{_short(same)}`' if same else ''


def summary(records: Dict[str, dict]) -> Dict[str, int]:
    """Counts: configs, fpn (configs with an FPN), ok, fail,
    not_runnable, no_fpn, config_error."""
    rows = [r for k, r in records.items() if not k.startswith('_')]
    counts = collections.Counter(r['status'] for r in rows)
    fpn = sum(counts[s] for s in (coverage.OK, coverage.FAIL,
                                  coverage.NOT_RUNNABLE))
    return dict(configs=len(rows), fpn=fpn, ok=counts[coverage.OK],
                fail=counts[coverage.FAIL],
                not_runnable=counts[coverage.NOT_RUNNABLE],
                no_fpn=counts[coverage.NO_FPN],
                config_error=counts[coverage.CONFIG_ERROR])


def figure(records: Dict[str, dict]) -> str:
    """The one-line result (for the README)."""
    s = summary(records)
    meta = _meta(records)
    vers = meta.get('versions', {})
    total = _total(records)
    partial = '' if s['configs'] >= total else (
        f'INCOMPLETE SWEEP ({s["configs"]} of {total} configs recorded so '
        'far): ')
    return (f'{partial}{s["ok"]} of {s["fpn"]} stock configs with an FPN '
            f'work with FaPN (build, loss, predict on CPU): {s["not_runnable"]} '
            f'cannot run here for reasons unrelated to FaPN, {s["fail"]} '
            f'fail because of FaPN (mmdet {vers.get("mmdet", "?")}, '
            f'mmsegmentation {vers.get("mmseg", "?")}, '
            f'swept {meta.get("date", "?")})')


def _total(records: Dict[str, dict]) -> int:
    """Configs the sweep(s) set out to check."""
    return max([m.get('configs', 0) for m in records.get('_meta') or []]
               + [0])


def _meta(records: Dict[str, dict]) -> dict:
    metas = records.get('_meta') or []
    dates = sorted(r['date'] for k, r in records.items()
                   if not k.startswith('_') and r.get('date'))
    out = dict(metas[-1]) if metas else {}
    if dates:
        first, last = dates[0][:10], dates[-1][:10]
        out['date'] = first if first == last else f'{first} to {last}'
    return out


def _table(rows: List[dict], header: Tuple[str, ...], cells) -> List[str]:
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    for r in rows:
        lines.append('| ' + ' | '.join(_cell(c) for c in cells(r)) + ' |')
    return lines


def render(records: Dict[str, dict]) -> str:
    """The whole ``docs/coverage.md``."""
    s = summary(records)
    meta = _meta(records)
    vers = meta.get('versions', {})
    total = _total(records)
    rows = sorted((r for k, r in records.items() if not k.startswith('_')),
                  key=lambda r: r['config'])
    fpn_rows = [r for r in rows if r['status'] in (
        coverage.OK, coverage.FAIL)]
    apart = [r for r in rows if r['status'] == coverage.NOT_RUNNABLE]
    out = ['# FaPN in every stock mmdet and mmseg config that uses FPN', '',
           f'**{figure(records)}.**', '',
           'Stack: ' + ', '.join(f'{k} {v}' for k, v in vers.items()) +
           f'; CPU, {meta.get("jobs", "?")} worker(s) of '
           f'{meta.get("threads", "?")} thread(s) each.  Of the '
           f'{max(total, s["configs"])} configs shipped, {s["fpn"]} have an '
           f'FPN, {s["no_fpn"]} have none (other necks listed at the end) '
           f'and {s["config_error"]} do not load.  Column *s*: wall-clock '
           'seconds of the FaPN check (build, init, loss, predict) on the '
           'machine of the sweep.', '',
           'Regenerate this page with `make coverage` (see the end).', '',
           METHOD]
    by_task = collections.defaultdict(collections.Counter)
    for r in rows:
        if r['status'] in (coverage.OK, coverage.FAIL,
                           coverage.NOT_RUNNABLE):
            by_task[(r['toolbox'], r.get('task', '?'))][r['status']] += 1
    out += ['## Summary by task', '']
    out += _table(sorted(by_task.items()),
                  ('toolbox', 'task', 'FPN configs', 'work with FaPN',
                   'fail (FaPN)', 'not runnable here'),
                  lambda kv: (kv[0][0], kv[0][1], sum(kv[1].values()),
                              kv[1][coverage.OK], kv[1][coverage.FAIL],
                              kv[1][coverage.NOT_RUNNABLE]))
    out += ['']
    fails = [r for r in fpn_rows if r['status'] == coverage.FAIL]
    out += ['## Failures that are FaPN\'s', '']
    if fails:
        out += _table(fails, ('config', 'task', 'stage', 'error',
                              'stock FPN model'),
                      lambda r: (f'`{r["config"]}`', r.get('task'),
                                 r.get('stage'), r.get('error'),
                                 r.get('stock_error') or 'works'))
    else:
        out += ['None.']
    out += ['', '## Every config with an FPN that runs here', '']
    out += _table(
        fpn_rows, ('config', 'task', 'builds', 'loss', 'predict',
                   'params FPN -> FaPN', 's', 'run as', 'error'),
        lambda r: (f'`{r["config"]}`', r.get('task'), _mark(r.get('builds')),
                   _mark(r.get('loss_ok')), _mark(r.get('predict_ok')),
                   _params(r), '' if r.get('same_model_as') else
                   r.get('seconds'), _run_as(r), r.get('error')))
    out += ['', '## Not runnable here (reasons unrelated to FaPN)', '',
            'The stock FPN model fails the same way (same stage, same '
            'exception type); its error is shown.', '']
    for r in apart:
        r['reason'] = coverage.reason_of(r)
    reasons = collections.Counter(r.get('reason') for r in apart)
    out += [f'* {n} x {reason}' for reason, n in reasons.most_common()]
    out += ['']
    out += _table(apart, ('config', 'task', 'reason', 'stage',
                          'stock FPN error', 'FaPN error', 'run as'),
                  lambda r: (f'`{r["config"]}`', r.get('task'),
                             r.get('reason'), r.get('stock_stage'),
                             r.get('stock_error'), r.get('error'),
                             _run_as(r)))
    necks = collections.Counter()
    for r in rows:
        if r['status'] == coverage.NO_FPN:
            for t in sorted(set(r.get('necks') or ['(no neck)'])):
                necks[t] += 1
    out += ['', '## Configs without FPN, by neck type', '',
            'Not swapped: FaPN replaces `FPN` only (FPN variants such as '
            'PAFPN, NAS-FPN, RFP or HRFPN have other structures and '
            'arguments).', '']
    out += [', '.join(f'{t} {n}' for t, n in necks.most_common())]
    errors = [r for r in rows if r['status'] == coverage.CONFIG_ERROR]
    if errors:
        out += ['', 'Configs that do not load: ' + ', '.join(
            f'`{r["config"]}` ({_cell(r.get("error"))})' for r in errors)]
    out += ['', RERUN]
    return '\n'.join(out)
