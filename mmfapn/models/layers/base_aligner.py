"""The one protocol of FaPN's top-down fusion modules ("aligners")."""
from typing import Tuple

from mmengine.model import BaseModule
from torch import Tensor


class BaseAligner(BaseModule):
    """Base class of every top-down fusion module: FAM, FAM after fusion,
    AlignFA, deconv, plain sum.

    An aligner fuses the lateral of a level with the coarser top-down map::

        fused = aligner(lateral, coarse)    # (N, C, H, W), lateral's size

    ``coarse`` has any (smaller) size; resizing it is the aligner's job.
    The neck (and the heads) call nothing else of it but the two methods
    below, so an aligner is free in how it fuses:

    * :meth:`init_offset` zeroes the module's own offset / flow predictors
      (an aligner without any does nothing).  :meth:`init_weights` calls it
      last, and a parent calls it after its own ``init_cfg``: mmengine
      applies a parent's ``init_cfg`` (e.g. ``Xavier, layer='Conv2d'``) to
      every nested conv, and children held in a plain ``nn.ModuleList`` get
      no ``init_weights`` call of their own.
    * :meth:`reset_parameters` restores the module's default (released)
      initialisation; the default keeps the construction's init.

    Settings an aligner takes from its host (the FaPN neck passes its own
    ``upsample_cfg``, ``conv_cfg``, ``norm_cfg``, ``deform_groups`` and
    ``dcn_impl``) are named in :attr:`shared_args`; everything else comes
    from ``align_cfg``.  To add an aligner: subclass this in a new file,
    register it with :func:`mmfapn.registry.register_model` and write
    ``neck=dict(type='FaPN', align_cfg=dict(type='MyAligner', ...))``
    (see ``docs/architecture.md``).

    Args:
        init_cfg (dict, optional): mmengine init config.
    """

    #: names of the host settings this aligner takes as keyword arguments
    shared_args: Tuple[str, ...] = ()

    def init_offset(self) -> None:
        """Zero the offset / flow predictors (none here)."""

    def reset_parameters(self) -> None:
        """The default initialisation (here: the construction's)."""

    def init_weights(self) -> None:
        super().init_weights()
        self.init_offset()

    def forward(self, lateral: Tensor, coarse: Tensor) -> Tensor:
        raise NotImplementedError
