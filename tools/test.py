"""Evaluate a checkpoint with an mmfapn config (mmdet or mmseg, picked from
its default_scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
                         [--cfg-options k=v ...]
                         [--launcher {none,pytorch,slurm,mpi}]

Multi-process: ``tools/dist_test.sh``.  The checkpoint is loaded with
``weights_only=True`` and mmfapn's allowlist (docs/reliability.md): the
command line, :func:`mmfapn.engine.cli.run_test`, installs mmfapn's
checkpoint hardening first.
"""
from mmfapn.engine import install_runtime_hardening
from mmfapn.engine.cli import run_test

if __name__ == '__main__':
    install_runtime_hardening()  # before the config is read
    run_test()
