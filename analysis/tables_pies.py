"""The PIE set tables: PIEs shared between two methods at the same setting vs unique
(``pies_shared``), and the per-class PIE distribution (``pies_per_class``) — the numbers behind the
PIE bar figures. "Shared with other methods" has one definition, :func:`analysis.pies.same_cell_groups`."""

from __future__ import annotations

from analysis.images import class_labels
from analysis.pies import SettingPies, SharedPies, per_class_counts, shared_with_other_methods
from analysis.runs import Setting, Study
from analysis.tables_render import DASH, PIE_SET_NOTE, Record, Table, _key, _render, _setting_key, pie_set_text
from analysis.uncertainty import StudyStats
from common.run_folder import method_name, pruning_name


# ---------------------------------------------------------------------------------------------
# PIEs shared / per class, populations
# ---------------------------------------------------------------------------------------------
def pies_shared(shared: list[SharedPies], stats: StudyStats | None = None) -> Table:
    """PIEs of two methods at the same (dataset, schedule, sparsity): shared vs unique to each."""
    records: list[Record] = []
    for pair in shared:
        a, b = pair.a.setting, pair.b.setting
        n_shared, only_a, only_b = pair.overlap.counts
        union = n_shared + only_a + only_b
        records.append(
            {"dataset": pair.dataset, "pruning": a.pruning, "sparsity": a.sparsity, "method_a": a.method,
             "method_b": b.method, "pies_a": pair.a.count, "pies_b": pair.b.count, "shared": n_shared,
             "only_a": only_a, "only_b": only_b, "jaccard": n_shared / union if union else float("nan"),
             "n_models_a": f"{pair.a.n_dense}/{pair.a.n_pruned}", "n_models_b": f"{pair.b.n_dense}/{pair.b.n_pruned}",
             "_a": a, "_b": b, "_union": union}
        )  # fmt: skip

    def row(r: Record) -> list[str]:
        a, b = r["_a"], r["_b"]
        return [
            pruning_name(a.pruning), f"{a.percent}%", f"{method_name(a.method)} ∩ {method_name(b.method)}",
            pie_set_text(r["pies_a"], a, stats) if stats is not None else f"{r['pies_a']} (n={r['n_models_a']})",
            pie_set_text(r["pies_b"], b, stats) if stats is not None else f"{r['pies_b']} (n={r['n_models_b']})",
            str(r["shared"]), str(r["only_a"]), str(r["only_b"]), DASH if not r["_union"] else f"{r['jaccard']:.2f}",
        ]  # fmt: skip

    return _render(
        "pies_shared",
        "PIEs shared between methods at the same sparsity",
        (
            "for two methods pruned with the same schedule to the same sparsity, shared = PIE under both "
            "(A ∩ B), only A = A ∖ B, only B = B ∖ A, Jaccard = shared / union, of the PIE sets of all models. "
            + PIE_SET_NOTE
        ),
        ["dataset", "pruning", "sparsity", "method_a", "method_b", "pies_a", "pies_b", "shared",
         "only_a", "only_b", "jaccard", "n_models_a", "n_models_b"],  # fmt: skip
        records,
        header=lambda dataset, _: ["schedule", "sparsity", "methods A ∩ B", "PIEs A", "PIEs B", "shared", "only A", "only B", "Jaccard"],
        row=row,
    )


def pies_per_class(pies: dict[Setting, SettingPies], study: Study | None = None) -> Table:
    """Per-class PIE counts (by true label) for every pruned setting, split into shared / unique."""
    shared_of = shared_with_other_methods(pies)
    records: list[Record] = []
    for setting in sorted(pies, key=_setting_key):
        result = pies[setting]
        shared = shared_of[setting]
        total = result.per_class
        shared_c = None if shared is None else per_class_counts(shared, result.labels, result.num_classes)
        for c in range(result.num_classes):
            records.append(
                {**_key(setting), "class": c, "pies": int(total[c]),
                 "shared": None if shared_c is None else int(shared_c[c]),
                 "unique": None if shared_c is None else int(total[c] - shared_c[c]),
                 "_setting": setting, "_result": result}
            )  # fmt: skip

    def rows(dataset: str, mine: list[Record]) -> list[list[str]]:
        """One row per setting, one cell per class record."""
        by_setting: dict[Setting, list[Record]] = {}
        for r in mine:
            by_setting.setdefault(r["_setting"], []).append(r)
        out = []
        for setting, members in by_setting.items():
            result: SettingPies = members[0]["_result"]
            cells = [f"{r['pies']}" + ("" if r["shared"] is None else f" ({r['shared']} shared)") for r in members]
            out.append([setting.label(dataset=False), f"{result.n_dense}/{result.n_pruned}", *cells, str(result.count)])
        return out

    return _render(
        "pies_per_class",
        "PIEs per class",
        (
            "PIEs of the set of all models counted by their true label; '(k shared)' = also a PIE of another method pruned "
            "with the same schedule to the same sparsity; n = dense/pruned models; columns: the dataset's class names "
            "(the datamodule's class_names) where it has them, else class indices."
        ),
        ["dataset", "method", "pruning", "sparsity", "class", "pies", "shared", "unique"],
        records,
        header=lambda dataset, mine: ["setting", "n", *_class_columns(study, dataset, mine[0]["_result"].num_classes), "total"],
        rows=rows,
    )


def _class_columns(study: Study | None, dataset: str, num_classes: int) -> list[str]:
    if study is None:
        return [f"class {c}" for c in range(num_classes)]
    names, _ = class_labels(study, dataset, num_classes)
    return [f"{c}: {name}" if name != str(c) else f"class {c}" for c, name in enumerate(names)]
