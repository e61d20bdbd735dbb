"""The paper's findings F1–F4 (REFERENCE §4) checked against these runs, with the numbers.

Each finding is split into sub-claims, and each sub-claim is judged by a 95% interval:
**supported** when the interval of the difference the claim predicts lies entirely on its side of 0,
**contradicted** when it lies entirely on the other side, and **cannot resolve** when it contains 0,
when the PIE count that would support it is not above the noise floor of its dense population
(or that floor cannot be measured: fewer than 4 dense models — two dense models alone may disagree
on as many images as a pruned cell's PIEs), or when the populations it needs are missing. A finding *supports* when every sub-claim is
supported, *contradicts* when its sub-claims are contradicted and none supported, and otherwise
says which parts hold (``partly supports`` / ``mixed``) or that it *cannot resolve*.

* **F1** (at high sparsity SCL loses more accuracy and has more PIEs than Sup): per schedule both
  methods have, at their highest common sparsity (>= :data:`HIGH_SPARSITY`): drop_SCL − drop_Sup
  (drop = dense − pruned accuracy) and PIEs_SCL − PIEs_Sup, bootstrap over models.
* **F2** (GMP hurts SCL more than the later ΔGMP / One-Shot): SCL's accuracy under each later
  schedule minus under GMP, and PIEs under GMP minus under the later schedule, at their highest
  common sparsity.
* **F3** (SCL's Q-Score drops with sparsity, Sup's stays flat): mean Q-Score change pruned − dense
  of SCL (< 0?) and |relative change| of SCL − that of Sup (> 0?), at the highest sparsity per schedule.
* **F4** (PD-Score predicts the pruned PD-Score for Sup but not for SCL; PIEs have higher PD):
  Spearman ρ of per-sample PD, dense vs pruned, Sup − SCL (> 0?; test samples resampled, the same
  rows for both methods), and mean PD of PIEs − non-PIEs per cell (> 0?; samples resampled; the
  sub-claim holds when at least half of the cells support it and none contradicts it).
  PD is averaged over the first ``--pd-models`` seeds (Table 6).

On CIFAR-10, F3 and F4 are also set against the paper's own magnitudes (``Finding.paper``, not part of
the verdict): the relative Q-Score change of SCL and of Sup (e.g. the paper's SCL 0.72 → 0.56 at GMP
90 %, −22 %; Sup 1.44 → 1.39, −3 %) and the PD gap of PIEs − non-PIEs per cell (Table 6) —
*reproduced* when the paper's value lies in our 95% interval, *not reproduced* when outside it,
*cannot resolve* without an interval.

The claims and the verdict rules live in ``analysis.findings_claims``, F1/F2 (accuracy and PIE counts) in
``analysis.findings_pies``, F3/F4 (Q-Score and prediction depth) in ``analysis.findings_scores``; this
module gathers them (:func:`all_findings`) and exports the public names (``__all__``).
"""

from __future__ import annotations

from analysis.findings_claims import HIGH_SPARSITY, NOT_REPRODUCED, REPRODUCED, Claim, Finding, paper_verdict
from analysis.findings_pies import f1, f2
from analysis.findings_scores import f3, f4
from analysis.pies import SettingPies
from analysis.runs import Setting, Study
from analysis.uncertainty import StudyStats


def all_findings(study: Study, pies: dict[Setting, SettingPies], stats: StudyStats) -> dict[str, list[Finding]]:
    """``{dataset: [F1, F2, F3, F4]}``."""
    return {d: [f1(d, stats), f2(d, stats), f3(d, study, stats), f4(d, study, pies, stats)] for d in study.datasets}


__all__ = ["Claim", "Finding", "HIGH_SPARSITY", "NOT_REPRODUCED", "REPRODUCED", "all_findings", "f1", "f2", "f3", "f4", "paper_verdict"]
