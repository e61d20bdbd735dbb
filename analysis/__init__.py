"""Population-level analysis of finished run folders: ``python cli.py analyze --runs ... --out ...``.

``runs``         find and load run folders (``run.json`` + ``per_sample/test.npz``), group them into
                 populations by (dataset, method, pruning schedule, target sparsity), refuse half-done runs
``pies``         :func:`~analysis.pies.pie_flags` (modal labels, tie rules), PIEs per setting, per
                 class, shared between methods
``stats``        pure NumPy statistics: bootstrap intervals over models, PIE counts of model
                 selections, the PIE noise floor, size-matched PIE counts, rank correlation
``uncertainty``  ``stats`` applied to a study: one coherent bootstrap per population, per-cell intervals
``pairs``        One-Shot children paired with their dense parents (paired accuracy change)
``findings``     the paper's findings F1–F4 judged against the runs (supports / contradicts / cannot resolve)
``tables``       Table 1, Tables 4/5, Table 6 (+ populations, PIE uncertainty, One-Shot pairs, shared
                 and per-class PIEs): Markdown + CSV
``figures``      Figure 3 (PD dense vs 90%), Figure 6 (gallery of flipped predictions), dense-vs-pruned
                 Q/PD scatter, per-class PIE bars, UMAP grid: PNG
``images``       the test images of the runs' dataset (for Figure 6 only; imports the datamodule lazily)
``reference``    the paper's numbers (REFERENCE.md §4) as data, and which are not available
``report``       ``report.md`` and the W&B run (``job_type="analyze"``)
``cli``          the ``analyze`` sub-command (``main(argv) -> int``)

The tables need only run folders and NumPy; the figures matplotlib; Figure 6 the dataset's
datamodule (torch) and a UMAP of saved ``features`` :func:`callbacks.metrics.umap.umap_embedding`
(umap-learn), both imported only when drawn.
"""
