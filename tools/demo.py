"""``make demo``: train FPN and FaPN with the same recipe on a synthetic,
boundary-heavy Cityscapes-format dataset (CPU, minutes), evaluate mIoU and
boundary mIoU (bIoU@3/5/8/12), and write ``work_dirs/demo/report.md`` with
the table and figures (FPN vs FaPN predictions, FaPN's feature alignment).

    python tools/demo.py [--iters N] [--batch-size N] [--num-train N]
        [--num-val N] [--num-classes N] [--seed N] [--threads N]
        [--fpn-config CFG] [--fapn-config CFG] [--num-figures N]
        [--log-interval N] [--work-dir DIR] [--verbose]

Defaults: configs/seg/demo/sem-fpn_r18_{fpn,fapn}_toycity-demo.py, 400
iterations of batch 4 each, 300 training and 100 validation images.  See
``mmfapn/demo/pipeline.py`` for what each step does.
"""
import os
import sys

# A busy CPU (more runnable processes than cores) makes OpenMP threads that
# spin while waiting several times slower; passive waiting costs little
# when the machine is idle.  Must be set before torch is imported.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    from mmfapn.demo.pipeline import main
    sys.exit(main())
