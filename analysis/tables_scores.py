"""Tables 4/5 (mean ± std of Q-Score, Z-score and ‖ĥ‖₁) and Table 6 (prediction depth of PIEs vs
non-PIEs): per-sample scores averaged over models, then mean ± std over test samples (ddof=0)."""

from __future__ import annotations

import numpy as np

from analysis import reference
from analysis.pies import SettingPies
from analysis.runs import Setting, Study
from analysis.stats import Interval, mean_over_models
from analysis.tables_render import (
    DASH,
    PIE_SET_NOTE,
    Record,
    Table,
    _key,
    _no_paper,
    _render,
    _seeds_text,
    _setting_key,
    fmt,
    pie_set_text,
    sample_mean_std,
)
from analysis.uncertainty import LEVEL, StudyStats

# ---------------------------------------------------------------------------------------------
# Tables 4/5
# ---------------------------------------------------------------------------------------------
Q_ARRAYS = (("q_score", "Q"), ("z_score", "Z"), ("l1_norm", "‖ĥ‖₁"))


def _minus_paper(values: np.ndarray | None, paper: float, level: float) -> Interval | None:
    """Our mean of per-model ``values`` − the paper's value, with the t-interval over our models (None
    without them)."""
    if values is None or len(values) < 1:
        return None
    ci = mean_over_models(np.asarray(values, dtype=np.float64), level=level)
    return Interval(ci.estimate - paper, ci.low - paper, ci.high - paper, level, ci.method, ci.resamples)


def _diff_text(diff: Interval | None, estimate: float | None, paper: float) -> str:
    if diff is not None:
        return diff.fmt(signed=True)
    return DASH if estimate is None else f"{estimate - paper:+.2f}"


def _diff_record(prefix: str, diff: Interval | None, estimate: float | None, paper: float | None) -> Record:
    value = None if estimate is None or paper is None else estimate - paper
    return {f"{prefix}_minus_paper": value, f"{prefix}_minus_paper_low": None if diff is None else diff.low,
            f"{prefix}_minus_paper_high": None if diff is None else diff.high}  # fmt: skip


def table4_5(study: Study, stats: StudyStats | None = None) -> Table:
    """Mean ± std over test samples of the per-sample population mean of Q, Z and ‖ĥ‖₁; on CIFAR-10
    the paper's value (± its std) in every cell it prints, and our mean Q − the paper's with its
    bootstrap interval over models."""
    records: list[Record] = []
    for dataset in study.datasets:
        pops = study.of(dataset)
        for setting in sorted(pops, key=_setting_key):
            pop = pops[setting]
            record: Record = {**_key(setting), "n_samples": len(pop.index)}
            for name, _ in Q_ARRAYS:
                stacked = pop.stack(name)
                if stacked is None:
                    record.update({f"{name}_mean": None, f"{name}_std": None, f"{name}_n_models": 0})
                    continue
                values, n = stacked
                mean, std = sample_mean_std(values.mean(axis=0))
                record.update({f"{name}_mean": mean, f"{name}_std": std, f"{name}_n_models": n})
            ref = reference.table4_5(dataset, setting.method, setting.pruning, setting.percent)
            values = stats.model_values(pop, "q_score") if stats is not None else None
            diff = None if ref is None else _minus_paper(values, ref.q, stats.level if stats else LEVEL)
            for name, attr in (("q", "q"), ("z", "z"), ("l1", "l1")):
                record[f"paper_{name}"] = None if ref is None else getattr(ref, attr)
                record[f"paper_{name}_std"] = None if ref is None else getattr(ref, f"{attr}_std")
            record.update(_diff_record("q", diff, record["q_score_mean"], None if ref is None else ref.q))
            record.update(_setting=setting, _ref=ref, _diff=diff)
            records.append(record)

    def header(dataset: str, _: list[Record]) -> list[str]:
        out = ["setting", *[f"{label} (mean ± std)" for _, label in Q_ARRAYS]]
        return out + ["paper Q / Z / ‖ĥ‖₁ (mean ± std)", "Q ours − paper [95% interval]"] if reference.matches(dataset) else out

    def row(r: Record) -> list[str]:
        out = [r["_setting"].label(dataset=False)]
        for name, _ in Q_ARRAYS:
            n = r[f"{name}_n_models"]
            out.append(f"no {name}" if not n else f"{fmt(r[f'{name}_mean'], r[f'{name}_std'])} (n={n})")
        if reference.matches(r["dataset"]):
            ref = r["_ref"]
            if ref is None:
                out += [DASH, DASH]
            else:
                out.append(f"{fmt(ref.q, ref.q_std)} / {fmt(ref.z, ref.z_std)} / {fmt(ref.l1, ref.l1_std)}")
                out.append(_diff_text(r["_diff"], r["q_score_mean"], ref.q))
        return out

    def notes(dataset: str, _: list[Record]) -> list[str]:
        if not reference.matches(dataset):
            return [_no_paper(dataset)]
        return ["paper: Tables 4 (SCL) and 5 (Sup), 30 models per cell, every cell it prints (no ΔGMP column); ours − paper: "
                "our mean Q − the paper's, the t-interval over our models (the paper's own spread not included)"]

    columns = ["dataset", "method", "pruning", "sparsity", "n_samples"]
    for name, _ in Q_ARRAYS:
        columns += [f"{name}_mean", f"{name}_std", f"{name}_n_models"]
    columns += ["paper_q", "paper_q_std", "paper_z", "paper_z_std", "paper_l1", "paper_l1_std",
                "q_minus_paper", "q_minus_paper_low", "q_minus_paper_high"]  # fmt: skip
    return _render(
        "table4_5",
        "Tables 4/5 — Q-Score, Z-score and ‖ĥ‖₁",
        (
            "per test sample, the value (callbacks.metrics.QScore) averaged over the n models of the population; "
            "then mean ± std (ddof=0) of that average over the test samples, as the authors' code does."
        ),
        columns,
        records,
        header=header,
        row=row,
        notes=notes,
        datasets=study.datasets,
    )


# ---------------------------------------------------------------------------------------------
# Table 6
# ---------------------------------------------------------------------------------------------
PD_WHICH = ("pruned", "dense")


def _pd_minus_paper(values: np.ndarray, mask: np.ndarray, paper: float, stats: StudyStats | None) -> Interval | None:
    """Our mean PD over the ``mask`` samples − the paper's, with the t-interval over our PD models (rows
    of ``values [models, N]``: each model's mean over the mask; their mean is the mean over the mask of
    the per-sample model mean)."""
    if stats is None or values.shape[0] < 2 or not mask.any():
        return None
    return _minus_paper(values[:, mask].mean(axis=1), paper, stats.level)


def table6(study: Study, pies: dict[Setting, SettingPies], stats: StudyStats | None = None) -> Table:
    """Prediction depth of PIEs vs non-PIEs, from the pruned models and from the dense models.

    PD is averaged over exactly the first ``study.pd_models`` seeds of each population (the paper
    averages PD over 5 models; fewer when a population has fewer); PIEs come from the whole populations.
    """
    n_pd = study.pd_models
    records: list[Record] = []
    for dataset in study.datasets:
        pops = study.of(dataset)
        for setting in sorted((s for s in pies if s.dataset == dataset), key=_setting_key):
            result = pies[setting]
            record: Record = {**_key(setting), "pies": result.count, "non_pies": int((~result.flags).sum())}
            ref = reference.table6(dataset, setting.method, setting.pruning, setting.percent)
            for which, pop in zip(PD_WHICH, (pops[setting], pops[setting.dense])):
                stacked = pop.stack("pd_score", first=n_pd)
                for part, mask in (("pies", result.flags), ("non_pies", ~result.flags)):
                    if stacked is None:
                        record.update({f"pd_{part}_{which}_mean": None, f"pd_{part}_{which}_std": None})
                        continue
                    mean, std = sample_mean_std(stacked[0].mean(axis=0)[mask])
                    record.update({f"pd_{part}_{which}_mean": mean, f"pd_{part}_{which}_std": std})
                    if which == "pruned" and ref is not None:  # the paper reports the pruned models' PD
                        paper = getattr(ref, part)
                        diff = _pd_minus_paper(stacked[0], mask, paper, stats)
                        record.update({f"paper_pd_{part}": paper, f"paper_pd_{part}_std": getattr(ref, f"{part}_std")})
                        record.update(_diff_record(f"pd_{part}", diff, mean, paper))
                        record[f"_diff_{part}"] = diff
                record[f"pd_n_models_{which}"] = 0 if stacked is None else stacked[1]
                record[f"pd_seeds_{which}"] = [r.seed for r in pop.runs[:n_pd] if r.has("pd_score")]
                record[f"_label_{which}"] = pop.setting.label(dataset=False)
            record.update(_setting=setting, _ref=ref)
            records.append(record)

    def header(dataset: str, _: list[Record]) -> list[str]:
        out = [
            "setting", "PIEs: set of all models · h vs h beside its floor", f"PD of PIEs (pruned models, first {n_pd} seeds)",
            f"PD of non-PIEs (pruned models, first {n_pd} seeds)",
            f"PD of PIEs (dense models, first {n_pd} seeds)", f"PD of non-PIEs (dense models, first {n_pd} seeds)", "PD models (seeds)",
        ]  # fmt: skip
        paper = ["paper PD of PIEs / non-PIEs (mean ± std)", "PD of PIEs ours − paper [95%]", "PD of non-PIEs ours − paper [95%]"]
        return out + paper if reference.matches(dataset) else out

    def row(r: Record) -> list[str]:
        setting: Setting = r["_setting"]
        out = [setting.label(dataset=False), pie_set_text(r["pies"], setting, stats)]
        used: list[str] = []
        for which in PD_WHICH:
            n = r[f"pd_n_models_{which}"]
            for part in ("pies", "non_pies"):
                if not n:
                    out.append("no pd_score")
                elif not r[part]:
                    out.append(f"{DASH} (0 samples)")
                else:
                    out.append(f"{fmt(r[f'pd_{part}_{which}_mean'], r[f'pd_{part}_{which}_std'])} (n={n}, {r[part]} samples)")
            if n:
                used.append(f"{which} {n} ({_seeds_text(r[f'pd_seeds_{which}'])})")
        out.append("; ".join(used) or DASH)
        if reference.matches(r["dataset"]):
            ref = r["_ref"]
            if ref is None:
                out += [DASH, DASH, DASH]
            else:
                out.append(f"{fmt(ref.pies, ref.pies_std)} / {fmt(ref.non_pies, ref.non_pies_std)}")
                for part in ("pies", "non_pies"):
                    out.append(_diff_text(r.get(f"_diff_{part}"), r.get(f"pd_{part}_pruned_mean"), getattr(ref, part)))
        return out

    def notes(dataset: str, mine: list[Record]) -> list[str]:
        out = [
            f"PD averaged over the first {n_pd} seeds of each population (sorted by seed; --pd-models), as the paper "
            f"averages PD over {reference.PD_MODELS_PER_CELL} models; PIEs from the whole populations (Table 1)."
        ]
        short = {
            f"{r[f'_label_{which}']} has {r[f'pd_n_models_{which}']}"
            for r in mine for which in PD_WHICH if 0 < r[f"pd_n_models_{which}"] < n_pd
        }  # fmt: skip
        if short:
            out.append(f"fewer than {n_pd} models with pd_score: {'; '.join(sorted(short))}")
        if not reference.matches(dataset):
            out.append(_no_paper(dataset))
        else:
            out.append("paper: Table 6 (PD of the pruned models, 5 per cell), every cell it prints (no ΔGMP column); ours − paper "
                       "with the t-interval over our PD models")  # fmt: skip
        if stats is not None:
            out.append(PIE_SET_NOTE)
        if any(not any(run.has("pd_score") for run in pop.runs) for pop in study.of(dataset).values()):
            out.append("'no pd_score': those runs were trained without the callbacks.metrics.PredictionDepth callback")
        return out

    columns = ["dataset", "method", "pruning", "sparsity", "pies", "non_pies"]
    for which in PD_WHICH:
        columns += [f"pd_pies_{which}_mean", f"pd_pies_{which}_std", f"pd_non_pies_{which}_mean",
                    f"pd_non_pies_{which}_std", f"pd_n_models_{which}", f"pd_seeds_{which}"]  # fmt: skip
    for part in ("pies", "non_pies"):
        columns += [f"paper_pd_{part}", f"paper_pd_{part}_std", f"pd_{part}_minus_paper", f"pd_{part}_minus_paper_low",
                    f"pd_{part}_minus_paper_high"]  # fmt: skip
    return _render(
        "table6",
        f"Table 6 — prediction depth of PIEs vs non-PIEs (PD over the first {n_pd} seeds per cell)",
        (
            f"per test sample, pd_score (callbacks.metrics.PredictionDepth) averaged over the first {n_pd} seeds of the "
            "pruned population and of its dense population (n = models used); mean ± std (ddof=0) over the PIEs and over "
            "the non-PIEs of that setting (the authors' code reports the pruned models' PD)."
        ),
        columns,
        records,
        header=header,
        row=row,
        notes=notes,
        datasets=study.datasets,
    )
