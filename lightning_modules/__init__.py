"""Training methods (LightningModules), encoders, heads and losses.

The methods are imported on first use (:func:`common.lazy.lazy_exports`), so ``lightning_modules.losses``
and ``lightning_modules.backbones`` (pure torch) can be imported without Lightning.
"""

from __future__ import annotations

from common.lazy import lazy_exports

_EXPORTS = {
    "BYOLModel": "lightning_modules.byol",
    "PhasedRepresentationModule": "lightning_modules.phased",
    "RepresentationModule": "lightning_modules.base",
    "SDCLRModel": "lightning_modules.sdclr",
    "SupConModel": "lightning_modules.supcon",
    "SupervisedClassifier": "lightning_modules.supervised",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
