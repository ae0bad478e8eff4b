"""Does FaPN work wherever the installed mmdet and mmseg use FPN?

    python tools/analysis/fapn_coverage.py [--toolbox mmdet mmseg]
        [--configs NAME ...] [--filter REGEX] [--out RECORDS.jsonl]
        [--markdown PAGE.md] [--jobs N] [--threads N] [--timeout S]
        [--no-dedupe] [--report-only]

Every stock config (``mmdet::path`` / ``mmseg::path``; all of them by
default) whose model has an FPN gets FaPN with the same arguments, is built
without weights and runs one loss and one predict on a small generated
batch on CPU (:mod:`mmfapn.analysis.coverage`).  One JSON line per config
goes to ``--out`` (configs already there are skipped: the sweep resumes);
the Markdown table of all records goes to ``--markdown``.
"""
import argparse
import re
import sys

from mmfapn.analysis import coverage, coverage_report, coverage_sweep
from mmfapn.registry import SCOPES


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='FaPN coverage sweep of the stock mmdet/mmseg configs')
    parser.add_argument('--toolbox', nargs='+', default=list(SCOPES),
                        choices=SCOPES)
    parser.add_argument('--configs', nargs='+', metavar='NAME',
                        help='stock configs (mmdet::path or mmseg::path) '
                        'instead of all of --toolbox')
    parser.add_argument('--filter', metavar='REGEX',
                        help='only the configs whose name matches')
    parser.add_argument('--out', default='work_dirs/coverage/records.jsonl',
                        help='JSON-lines records (appended; resumable)')
    parser.add_argument('--markdown', default=None,
                        help='write the Markdown report here')
    parser.add_argument('--jobs', type=int, default=1,
                        help='worker processes')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads per worker')
    parser.add_argument('--timeout', type=float, default=900.0,
                        help='seconds one config may take')
    parser.add_argument('--no-dedupe', action='store_true',
                        help='run configs with identical models each')
    parser.add_argument('--report-only', action='store_true',
                        help='only write the report of --out')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        print(f'fapn_coverage: --jobs and --threads must be >= 1, got '
              f'{args.jobs} and {args.threads}', file=sys.stderr)
        return 2
    if args.report_only:
        records = coverage_sweep.read_records(args.out)
        if len(records) <= 1:
            print(f'fapn_coverage: no records in {args.out}',
                  file=sys.stderr)
            return 1
    else:
        if args.configs:
            names = args.configs
            for name in names:
                coverage.split_name(name)  # one clear error for a typo
        else:
            names = [n for t in args.toolbox
                     for n in coverage.list_stock_configs(t)]
        if args.filter:
            pattern = re.compile(args.filter)
            names = [n for n in names if pattern.search(n)]
        records = coverage_sweep.sweep(
            names, args.out, jobs=args.jobs, timeout=args.timeout,
            threads=args.threads, dedupe=not args.no_dedupe)
    print(coverage_report.figure(records))
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(coverage_report.render(records) + '\n')
        print(f'report: {args.markdown}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
