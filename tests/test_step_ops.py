"""What a training step dispatches, counted on the CPU (the GPU's kernel launches and device reads).

Real ``cli.py fit`` runs of the shipped Sup dense, Sup GMP (masks held) and SCL configs, counted by
``benchmarks/opcount.py`` over five mid-epoch steps (data fetch, transfer, device augmentation, every
hook, forward, backward, optimiser, logging), against the plain loop of ``benchmarks/speed.py``:

* no operation that reads a value back (``.item()``, ``bool(t)``, ``nonzero``, ``equal``): the host's
  own bookkeeping (augmentation parameters, batch indices, crop and jitter groups) is NumPy, so any such
  operation here would be a device-to-host synchronisation on a GPU (tests/test_cuda.py checks that
  directly under ``torch.cuda.set_sync_debug_mode("error")`` where a GPU is at hand);
* a Sup step at most 1.15x the plain loop's operations; GMP holding its masks at most 8 more than dense;
* an SCL step at most 1.75x its plain loop (1.63x: the two views' RandomResizedCrop, ColorJitter in
  per-sample order and grayscale as one fixed sequence of ~300 operations; it was 2.60x while the
  jitter ran per (slot, op) group of samples), and the same count at every step, whatever the draws.
"""

from __future__ import annotations

import pytest
from conftest import REPO  # noqa: F401 - puts the repository on sys.path

from benchmarks.speed import fit_ops, plain_ops

READS = {"_local_scalar_dense", "item", "is_nonzero", "nonzero", "equal", "allclose", "_assert_async"}


@pytest.fixture(scope="module")
def counts() -> dict:
    return {case: fit_ops(case) for case in ("sup", "sup_gmp", "supcon")}


@pytest.mark.parametrize("case", ["sup", "sup_gmp", "supcon"])
def test_a_training_step_reads_nothing_back(case: str, counts: dict) -> None:
    assert len(counts[case]["steps"]) == 5
    assert {name: n for name, n in counts[case]["ops"].items() if name in READS} == {}


def test_a_sup_step_is_within_15_percent_of_the_plain_loop_and_gmp_adds_two(counts: dict) -> None:
    plain = plain_ops("sup", 32)
    sup, gmp = max(counts["sup"]["steps"]), max(counts["sup_gmp"]["steps"])
    assert sup <= 1.15 * plain, (sup, plain)
    assert gmp - sup <= 8 and counts["sup_gmp"]["ops"].get("_foreach_mul_") == 2 * 5  # masks: one op for grads, one for weights


def test_an_scl_step_is_within_75_percent_of_its_plain_loop_whatever_the_draws(counts: dict) -> None:
    plain = plain_ops("supcon", 32)
    steps = counts["supcon"]["steps"]
    assert max(steps) <= 1.75 * plain, (steps, plain)
    assert len(set(steps)) == 1, steps  # the augmentation's operations do not depend on the parameters drawn
