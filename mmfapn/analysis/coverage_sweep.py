"""Run :func:`mmfapn.analysis.coverage.check_config` over many stock
configs: worker processes (``jobs``), a progress line, resumable output.

The output is a JSON-lines file, one record per config, appended and
flushed as each config finishes, so an interrupted sweep resumes where it
stopped: configs already in the file are skipped.  Configs are first
scanned in the main process (loading a config is cheap, building a model is
not); those without FPN are recorded at once.  Configs whose model (and
custom imports) are identical, e.g. the 1x/2x/3x schedules of one model,
are checked once: the others get the same result with ``same_model_as``
naming the config that was run (``dedupe=False`` runs each).

Each check runs in a worker process (spawned, one torch thread each by
default), so that a crash or a hang in one model (``timeout`` seconds) is
recorded as that config's failure and the sweep goes on.
"""
import datetime
import hashlib
import json
import multiprocessing as mp
import os
import os.path as osp
import sys
import time
import traceback
from multiprocessing.connection import wait
from typing import Callable, Dict, Iterable, List, Optional, TextIO

from mmfapn.analysis import coverage

META_KEY = '_meta'


def versions() -> Dict[str, str]:
    """Versions of the stack the sweep ran on."""
    out = {}
    for name in ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmseg', 'mmfapn'):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # an absent toolbox is recorded as such
            out[name] = 'not installed'
    return out


def read_records(path: str) -> Dict[str, dict]:
    """Records already in ``path`` by config name (later lines win), plus
    the sweep metadata lines under ``META_KEY``."""
    records: Dict[str, dict] = {}
    metas: List[dict] = []
    if not osp.isfile(path):
        records[META_KEY] = metas
        return records
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                # a line cut by a kill: that config runs again
                print(f'coverage: ignoring malformed line {number} of '
                      f'{path}', file=sys.stderr)
                continue
            if META_KEY in record:
                metas.append(record[META_KEY])
            else:
                records[record['config']] = record
    records[META_KEY] = metas
    return records


def model_hash(cfg) -> str:
    return hashlib.sha1(coverage.model_key(cfg).encode()).hexdigest()[:16]


class Progress:
    """One progress line: a bar, counts by status, elapsed time and ETA
    (rewritten in place on a terminal, one line per config otherwise)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr,
                 label: str = 'coverage') -> None:
        self.total = max(total, 1)
        self.done = 0
        self.counts: Dict[str, int] = {}
        self.stream = stream
        self.label = label
        self.start = time.monotonic()
        self.tty = hasattr(stream, 'isatty') and stream.isatty()

    def update(self, name: str, status: str) -> None:
        self.done += 1
        self.counts[status] = self.counts.get(status, 0) + 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        width = 24
        filled = int(width * self.done / self.total)
        counts = ' '.join(f'{k} {v}' for k, v in sorted(self.counts.items()))
        line = (f'{self.label} [{"#" * filled}{"." * (width - filled)}] '
                f'{self.done}/{self.total} {_clock(elapsed)} elapsed, ETA '
                f'{_clock(eta)} | {counts} | {name}: {status}')
        if self.tty:
            self.stream.write('\r' + line[:200].ljust(200))
            if self.done == self.total:
                self.stream.write('\n')
        else:
            self.stream.write(line + '\n')
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def _worker_main(conn, threads: int) -> None:
    """A worker: receive config names, send back their records."""
    import warnings

    import torch
    from mmengine.logging import MMLogger
    torch.set_num_threads(threads)
    os.environ.setdefault('OMP_NUM_THREADS', str(threads))
    # the records carry the errors; deprecation chatter would bury the
    # progress line
    warnings.filterwarnings('ignore')
    MMLogger.get_instance('mmengine').setLevel('ERROR')
    while True:
        name = conn.recv()
        if name is None:
            return
        try:
            record = coverage.check_config(name)
        except Exception as e:  # check_config records failures itself
            record = dict(config=name, status=coverage.FAIL,
                          error=f'sweep error: {type(e).__name__}: {e}',
                          trace=traceback.format_exc()[-2000:])
        conn.send(record)


class _Worker:

    def __init__(self, ctx, threads: int) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, threads),
                                daemon=True)
        self.proc.start()
        child.close()
        self.name: Optional[str] = None
        self.started = 0.0

    def submit(self, name: str) -> None:
        self.name = name
        self.started = time.monotonic()
        self.conn.send(name)

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def run_in_workers(names: List[str], jobs: int, timeout: float,
                   threads: int,
                   on_record: Callable[[dict], None]) -> None:
    """Check ``names`` in ``jobs`` worker processes; ``on_record`` gets
    each record as it comes (crashes and timeouts included)."""
    ctx = mp.get_context('spawn')
    pending = list(reversed(names))
    workers = [_Worker(ctx, threads) for _ in range(min(jobs, len(names)))]
    try:
        for w in workers:
            if pending:
                w.submit(pending.pop())
        while any(w.name for w in workers):
            busy = [w for w in workers if w.name]
            ready = wait([w.conn for w in busy] +
                         [w.proc.sentinel for w in busy], timeout=1.0)
            for i, w in enumerate(workers):
                if not w.name:
                    continue
                record = None
                if w.conn in ready:
                    try:
                        record = w.conn.recv()
                    except EOFError:
                        record = None
                if record is None and (w.proc.sentinel in ready or
                                       time.monotonic() - w.started >
                                       timeout):
                    died = not w.proc.is_alive()
                    w.stop(kill=True)
                    why = (f'worker died (exit code {w.proc.exitcode})'
                           if died else f'timed out after {timeout:.0f} s')
                    record = dict(config=w.name, status=coverage.FAIL,
                                  error=f'sweep: {why}', seconds=round(
                                      time.monotonic() - w.started, 1))
                    workers[i] = w = _Worker(ctx, threads)
                if record is None:
                    continue
                w.name = None
                on_record(record)
                if pending:
                    w.submit(pending.pop())
    finally:
        for w in workers:
            w.stop(kill=bool(w.name))


def sweep(names: Iterable[str], output: str, jobs: int = 1,
          timeout: float = 900.0, threads: int = 1, dedupe: bool = True,
          stream: TextIO = sys.stderr) -> Dict[str, dict]:
    """Check every config of ``names`` not already in ``output``; returns
    all records of ``output`` (old and new) by config name."""
    if jobs < 1:
        raise ValueError(f'coverage: jobs must be >= 1, got {jobs}')
    os.makedirs(osp.dirname(osp.abspath(output)), exist_ok=True)
    names = list(dict.fromkeys(names))
    done = read_records(output)
    todo = [n for n in names if n not in done]
    by_hash = {r['model_hash']: r for r in done.values()
               if isinstance(r, dict) and r.get('model_hash')
               and not r.get('same_model_as')}
    with open(output, 'a') as out:

        def write(record: dict) -> None:
            record.setdefault(
                'date', datetime.datetime.now(
                    datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))
            out.write(json.dumps(record, sort_keys=True) + '\n')
            out.flush()
            done[record['config']] = record

        meta = dict(
            started=datetime.datetime.now(datetime.timezone.utc).strftime(
                '%Y-%m-%d %H:%M UTC'), versions=versions(), jobs=jobs,
            threads=threads, configs=len(names), todo=len(todo))
        out.write(json.dumps({META_KEY: meta}) + '\n')
        out.flush()
        done[META_KEY].append(meta)
        scan = Progress(len(todo), stream, label='scan')
        groups: Dict[str, List[str]] = {}
        for name in todo:
            record, cfg = coverage.scan_config(name)
            if 'fpn_paths' not in record:
                write(record)
                scan.update(name, record['status'])
                continue
            key = model_hash(cfg) if dedupe else name
            if key in by_hash:  # checked in an earlier run
                write(_copy_of(by_hash[key], name, key))
                scan.update(name, 'same model as ' +
                            by_hash[key]['config'])
                continue
            groups.setdefault(key, []).append(name)
            scan.update(name, 'fpn')
        run = [members[0] for members in groups.values()]
        members_of = {members[0]: (key, members[1:])
                      for key, members in groups.items()}
        progress = Progress(sum(len(m) for m in groups.values()), stream)

        def on_record(record: dict) -> None:
            key, others = members_of[record['config']]
            record['model_hash'] = key if dedupe else None
            write(record)
            progress.update(record['config'], record['status'])
            for other in others:
                write(_copy_of(record, other, key))
                progress.update(other, record['status'])

        run_in_workers(run, jobs, timeout, threads, on_record)
    return done


def _copy_of(record: dict, name: str, key: str) -> dict:
    copy = {k: v for k, v in record.items() if k not in ('date', )}
    copy.update(config=name, same_model_as=record['config'], seconds=0.0,
                model_hash=key)
    return copy
