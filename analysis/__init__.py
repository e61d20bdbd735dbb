"""Population-level analysis of finished run folders: ``python cli.py analyze --runs ... --out ...``.

``runs``         a study loaded: :func:`~analysis.runs.load_study` over ``run_folders`` (find and read
                 run folders: ``run.json`` + ``per_sample/test.npz``) and ``populations`` (group them by
                 dataset, method, pruning schedule, target sparsity; refuse half-done runs)
``pies``         :func:`~analysis.pies.pie_flags` (modal labels, tie rules), PIEs per setting, per
                 class, shared between methods
``stats``        pure NumPy statistics, in ``intervals`` (bootstrap intervals over models, rank
                 correlation, mean differences) and ``selections`` (PIE counts of model selections, the
                 PIE noise floor, size-matched PIE counts)
``uncertainty``  ``stats`` applied to a study: one coherent bootstrap per population, per-cell intervals
``pairs``        One-Shot children paired with their dense parents (paired accuracy change)
``findings``     the paper's findings F1–F4 judged against the runs (supports / contradicts / cannot
                 resolve): ``findings_claims`` (verdict rules), ``findings_pies`` (F1, F2), ``findings_scores`` (F3, F4)
``tables``       Table 1, Tables 4/5, Table 6 (+ populations, PIE uncertainty, One-Shot pairs, shared
                 and per-class PIEs): Markdown + CSV; one ``tables_*`` module per family, ``tables_render`` the renderer
``figures``      Figure 3 (PD dense vs 90%), Figure 6 (gallery of flipped predictions), dense-vs-pruned
                 Q/PD scatter, per-class PIE bars (``cell_figures``), UMAP grid (``umap_grid``): PNG;
                 the paper's layouts in ``paper_figures``
``images``       the test images of the runs' dataset (for Figure 6 only; imports the datamodule lazily)
``reference``    the paper's numbers (REFERENCE.md §4) as data, and which are not available
``report``       ``report.md`` and the W&B run (``job_type="analyze"``)
``cli``          the ``analyze`` sub-command (``main(argv) -> int``)

The tables need only run folders and NumPy; the figures matplotlib; Figure 6 the dataset's
datamodule (torch) and a UMAP of saved ``features`` :func:`callbacks.metrics.umap.umap_embedding`
(umap-learn), both imported only when drawn.
"""
