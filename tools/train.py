"""Train an mmfapn config (mmdet or mmseg, picked from its default_scope).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
                          [--amp] [--cfg-options k=v ...]
                          [--launcher {none,pytorch,slurm,mpi}]

``--amp``: float16 autocast with dynamic loss scaling (mmengine's
``AmpOptimWrapper``) on CUDA; without CUDA, bfloat16 autocast on CPU
(``mmfapn.engine.CPUAmpOptimWrapper``).

``--resume`` without a path resumes from the newest *complete* checkpoint
in the work directory (see ``mmfapn.engine.find_latest_checkpoint``); with a
path, from that checkpoint.  The resumed run continues the interrupted one
bit for bit (the configs' runner; docs/reliability.md).  Multi-process:
``tools/dist_train.sh``, ``tools/slurm_train.sh``; without CUDA they use
gloo and plain BN.

The command line is :func:`mmfapn.engine.cli.run_train`; it installs
mmfapn's checkpoint hardening (safe loading, atomic writes) first.
"""
from mmfapn.engine import install_runtime_hardening
from mmfapn.engine.cli import run_train

if __name__ == '__main__':
    install_runtime_hardening()  # before the config is read
    run_train()
