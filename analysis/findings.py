"""The paper's findings F1–F4 (REFERENCE §4) checked against these runs, with the numbers.

Each finding is split into sub-claims, and each sub-claim is judged by the 95% interval over models
(:func:`analysis.intervals.over_models`) of the difference it predicts *and* by the size of that
difference against the paper's own (:func:`analysis.findings_claims.judge`, the effects in
:mod:`analysis.reference`): **supported** when the interval lies on the predicted side of 0 and the
estimate is within a factor :data:`analysis.reference.ORDER` of the paper's effect; **direction
only** when the direction is resolved but the size is not of that order (or the paper prints no
number); **contradicted** when the interval lies on the other side; **cannot resolve** when it
contains 0, when the PIE count that would support it is not above its noise floor at the same
population size (or there is no floor: too few models), or when the populations it needs are
missing. The rule is the same on every dataset. A finding *supports* when every sub-claim is
supported; otherwise its verdict says which parts hold.

* **F1** (at high sparsity SCL loses more accuracy and has more PIEs than Sup): per schedule both
  methods have, at their highest common sparsity (>= :data:`HIGH_SPARSITY`): drop_SCL − drop_Sup
  (points; the paper: 5.39 at GMP 90 %, 3.29 at One-Shot 90 %) and PIEs_SCL / PIEs_Sup − 1 at the
  same ``h`` vs ``h`` (the paper, 30 vs 30: +174 %, +200 %), SCL's PIEs above its floor.
* **F2** (GMP hurts SCL more than the later ΔGMP / One-Shot): SCL's accuracy under each later
  schedule minus under GMP (the paper: +2.20 / +2.27 points at 90 %), and PIEs under GMP / under the
  later schedule − 1 (+43 % / +36 %), at their highest common sparsity.
* **F3** (SCL's Q-Score drops with sparsity, Sup's stays flat): SCL's relative Q-Score change (< 0;
  the paper: −22 % GMP, −18 % One-Shot at 90 %) and |relative change| of SCL − that of Sup (> 0; the
  paper: +18.8 / +13.9 % points), at the highest sparsity per schedule.
* **F4** (PD-Score predicts the pruned PD-Score for Sup but not for SCL; PIEs have higher PD):
  Spearman ρ of per-sample PD, dense vs pruned (population means over the first ``--pd-models``
  seeds), Sup − SCL > 0 with the interval over those models — supported only when SCL's ρ is also
  below :data:`analysis.reference.F4_RHO_NOT_WELL` (the paper prints no ρ; "not well" read as
  ρ² < 0.5); and mean PD of PIEs − non-PIEs per cell (Table 6's gaps, 4.1–5.0), interval over models
  with the PIE flags recomputed, a cell counting only when its PIEs are above their floor (noise
  PIEs sit on ambiguous, deep samples too); the sub-claim holds when at least half of the cells do
  and none contradicts it.

On CIFAR-10, F3 and F4 are also set against the paper's own values cell by cell (``Finding.paper``):
*reproduced* when the paper's value lies in our 95% interval, *not reproduced* when outside it,
*cannot resolve* without an interval.

The claims and the verdict rules live in ``analysis.findings_claims``, F1/F2 (accuracy and PIE counts) in
``analysis.findings_pies``, F3/F4 (Q-Score and prediction depth) in ``analysis.findings_scores``; this
module gathers them (:func:`all_findings`) and exports the public names (``__all__``).
"""

from __future__ import annotations

from analysis.findings_claims import (
    CONTRADICTED,
    DIRECTION,
    HIGH_SPARSITY,
    NOT_REPRODUCED,
    REPRODUCED,
    SUPPORTED,
    UNRESOLVED,
    Claim,
    Finding,
    judge,
    paper_verdict,
)
from analysis.findings_pies import f1, f2
from analysis.findings_scores import f3, f4
from analysis.pies import SettingPies
from analysis.runs import Setting, Study
from analysis.uncertainty import StudyStats


def all_findings(study: Study, pies: dict[Setting, SettingPies], stats: StudyStats) -> dict[str, list[Finding]]:
    """``{dataset: [F1, F2, F3, F4]}``."""
    return {d: [f1(d, stats), f2(d, stats), f3(d, study, stats), f4(d, study, pies, stats)] for d in study.datasets}


__all__ = [
    "CONTRADICTED", "DIRECTION", "HIGH_SPARSITY", "NOT_REPRODUCED", "REPRODUCED", "SUPPORTED", "UNRESOLVED", "Claim", "Finding",
    "all_findings", "f1", "f2", "f3", "f4", "judge", "paper_verdict",
]  # fmt: skip
