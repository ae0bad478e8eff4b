"""``make demo``: does FaPN help?  Train FPN and FaPN with the same recipe
over K paired seeds (same backbone initialisation and data order per seed)
on a synthetic, boundary-heavy Cityscapes-format dataset (CPU, minutes),
evaluate mIoU and boundary mIoU (bIoU@3/5/8/12) on a held-out test split,
and write ``work_dirs/demo/report.md`` / ``report.json``: per-seed table,
mean +- std, the paired difference with a 95% t-interval, a verdict, the
bIoU@n plot, FaPN's offset statistics and figures.

    python tools/demo.py [--seeds K] [--seed S] [--iters N]
        [--batch-size N] [--num-train N] [--num-val N] [--num-test N]
        [--num-classes N] [--data-seed N] [--split {test,val}]
        [--offset-lr-mult X] [--threads N] [--fpn-config CFG]
        [--fapn-config CFG] [--num-figures N] [--log-interval N]
        [--work-dir DIR] [--verbose]

Defaults: configs/seg/demo/sem-fpn_r18_{fpn,fapn}_toycity-demo.py, 3
seeds, 300 iterations of batch 4 per run, 300 train / 100 val / 100 test
images.  ``--seeds 1`` is a quick mode (no interval).  ``--split val``
evaluates on val, for choosing a recipe.  The protocol is in
``mmfapn/demo/pipeline.py`` and docs/demo.md.
"""
import os
import sys

# A busy CPU (more runnable processes than cores) makes OpenMP threads that
# spin while waiting several times slower; passive waiting costs little
# when the machine is idle.  Must be set before torch is imported.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

if __name__ == '__main__':
    from mmfapn.demo.pipeline import main
    sys.exit(main())
