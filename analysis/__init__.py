"""Population-level analysis of finished run folders: ``python cli.py analyze --runs ... --out ...``.

``runs``       find and load run folders (``run.json`` + ``per_sample/test.npz``), group them into
               populations by (dataset, method, pruning schedule, target sparsity), check them
``pies``       :func:`~analysis.pies.pie_flags` (modal labels, tie rules), PIEs per setting, per
               class, shared between methods
``tables``     Table 1, Tables 4/5, Table 6 (+ populations, shared and per-class PIEs): Markdown + CSV
``figures``    dense-vs-pruned Q/PD scatter, per-class PIE bars, UMAP grid: PNG
``reference``  the paper's numbers (REFERENCE.md §4) as data
``report``     ``report.md`` and the W&B run (``job_type="analyze"``)
``cli``        the ``analyze`` sub-command (``main(argv) -> int``)

The analysis reads only run folders and needs NumPy/matplotlib (+ wandb); only a UMAP of saved
``features`` imports :func:`callbacks.metrics.umap.umap_embedding` (umap-learn).
"""
