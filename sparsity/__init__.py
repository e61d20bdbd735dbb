"""The pure sparsity maths: plain torch, no Lightning, importing nothing above :mod:`common`.

* :mod:`sparsity.schedules` — ``cubic_sparsity`` (Zhu & Gupta's staircase), event steps.
* :mod:`sparsity.masks` — global / layer-wise magnitude, N:M, channel, random and ERK masks, ``sparsity_of``.
* :mod:`sparsity.dynamics` — mask oscillation, training FLOPs, drop-and-regrow maths.
* :mod:`sparsity.regrowth` — :class:`~sparsity.regrowth.Regrowth`: drop-and-regrow over a set of masks.
* :mod:`sparsity.tracker` — :class:`~sparsity.tracker.MaskTracker`: one set of masks, its events,
  oscillation, training cost and checkpoint state.

The pruning callbacks (:mod:`callbacks.pruning`) and SDCLR (:mod:`lightning_modules.sdclr`) both use
them; nothing here may import a room above (``tests/test_imports.py`` checks the import graph).
"""
