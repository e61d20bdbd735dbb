"""The ``populations`` table: what was aggregated — models, seeds, status, epochs, backbone, achieved sparsity."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from analysis.runs import Study
from analysis.tables_render import DASH, Record, Table, _key, _render, _seeds_text, _setting_key


def populations(study: Study, *, show: Any = str) -> Table:
    """What each population aggregates."""
    records: list[Record] = []
    for dataset in study.datasets:
        for setting in sorted(study.of(dataset), key=_setting_key):
            pop = study.populations[setting]
            achieved = [r.summary.get("achieved_sparsity") for r in pop.runs]
            achieved_f = [float(a) for a in achieved if isinstance(a, (int, float))]
            statuses = Counter(r.status or "no status" for r in pop.runs)
            modes = sorted({str(r.summary["oneshot_mode"]) for r in pop.runs if r.summary.get("oneshot_mode")})
            records.append(
                {**_key(setting), "n_models": pop.n, "seeds": ["?" if s is None else s for s in pop.seeds],
                 "status": ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
                 "oneshot_mode": "/".join(modes), "epochs": "/".join(sorted({str(r.summary.get("epochs")) for r in pop.runs})),
                 "backbone": "/".join(sorted({str(r.summary.get("backbone")) for r in pop.runs})),
                 "achieved_sparsity_mean": float(np.mean(achieved_f)) if achieved_f else None,
                 "test_samples": len(pop.index), "run_dirs": [show(r.path) for r in pop.runs], "_setting": setting}
            )  # fmt: skip

    def row(r: Record) -> list[str]:
        folders, achieved = r["run_dirs"], r["achieved_sparsity_mean"]
        return [
            r["_setting"].label(dataset=False) + (f" ({r['oneshot_mode']})" if r["oneshot_mode"] else ""),
            str(r["n_models"]), _seeds_text(r["seeds"]), r["status"], r["epochs"], r["backbone"],
            DASH if achieved is None else f"{achieved:.3f}", str(r["test_samples"]),
            folders[0] + (f" … (+{len(folders) - 1})" if len(folders) > 1 else ""),
        ]  # fmt: skip

    return _render(
        "populations",
        "Populations",
        (
            "runs grouped by (dataset, method, pruning schedule, target sparsity) from run.json; a run without pruning or "
            "with target 0 is dense; status = run.json status counts (only 'complete' runs are read without --allow-incomplete)."
        ),
        ["dataset", "method", "pruning", "sparsity", "n_models", "seeds", "status", "oneshot_mode", "epochs",
         "backbone", "achieved_sparsity_mean", "test_samples", "run_dirs"],  # fmt: skip
        records,
        header=lambda dataset, _: ["setting", "n", "seeds", "status", "epochs", "backbone", "achieved sparsity", "test samples", "run folders"],
        row=row,
        datasets=study.datasets,
    )
