"""``python tests/pinned_cli.py <repo>/cli.py <args>``: ``cli.py`` with CPU arithmetic that gives the
same bits whatever the x86 CPU model, for tests that compare a fit with numbers recorded on another machine.

A float32 fit on the CPU is only bit-reproducible on the CPU model it was recorded on: oneDNN's
convolutions and MKL's GEMMs pick their kernels and blocking from the ISA and cache sizes, and ATen's
vectorised kernels reduce in 8 or 16 lanes by the CPU's capability. Here oneDNN and NNPACK are off
(convolutions go through ATen's im2col and MKL), and the caller sets, before torch loads:
``ATEN_CPU_CAPABILITY=default`` (one lane width everywhere), ``MKL_CBWR=COMPATIBLE`` (MKL's
reproducible code path on every CPU) and ``OMP_NUM_THREADS`` (the same split of the work):
``PINNED_ENV`` below. Slower (~1.7x for WRN-10-1), and not what a user's fit computes: only for
comparing a fit with itself across code versions.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import torch

#: the environment the launcher expects (``tests/test_speed_equivalence.py`` sets it)
PINNED_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": "2"}

if __name__ == "__main__":
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    sys.argv = sys.argv[1:]
    sys.path[0] = str(Path(sys.argv[0]).resolve().parent)  # cli.py's own checkout, as `python cli.py` would
    runpy.run_path(sys.argv[0], run_name="__main__")
