"""The pure sparsity maths: plain torch, no Lightning, importing nothing above :mod:`common`.

* :mod:`sparsity.schedules` — ``cubic_sparsity`` (Zhu & Gupta's staircase), event steps.
* :mod:`sparsity.masks` — global / layer-wise magnitude masks, ``compute_masks``, ``sparsity_of``; on
  :mod:`sparsity.selection` (scores, keeping all but the smallest), with N:M and channel masks in
  :mod:`sparsity.structured` and random ERK masks in :mod:`sparsity.erk`.
* :mod:`sparsity.dynamics` — mask oscillation, training FLOPs, drop-and-regrow maths.
* :mod:`sparsity.regrowth` — :class:`~sparsity.regrowth.Regrowth`: drop-and-regrow over a set of masks.
* :mod:`sparsity.tracker` — :class:`~sparsity.tracker.MaskTracker`: one set of masks, its events,
  oscillation, training cost and checkpoint state.

The pruning callbacks (:mod:`callbacks.pruning`) and SDCLR (:mod:`lightning_modules.sdclr`) both use
them; nothing here may import a room above (``tests/test_import_graph.py`` checks the import graph).
"""
