"""The run-folder contract: what a run folder holds, what ``run.json`` says, how methods are named.

Training writes a run folder (``cli.py fit``: one per run, ``trainer.default_root_dir``) and
``analyze`` reads it back, often on another machine and long after; both sides name the files, the
``run.json`` keys and the display names from here, so the two cannot drift apart. The module is
stdlib + typing only (no torch, no Lightning): the analysis and the scripts import it without a
training stack (tests/test_imports.py checks every ``common.*`` module).

Layout of ``<run_dir>``::

    config.yaml                 resolved config (training/options.py's WandbConfigCallback)
    run.json                    the summary: :class:`RunJson` (callbacks/run_summary.py)
    checkpoints/last.ckpt       resumable state, with checkpoints/last.json (callbacks/resume.py)
    csv/metrics.csv             the CSV logger
    per_sample/<stage>.npz      per-sample columns (test.npz, val_epoch<k>.npz; callbacks/metrics)
    figures/<name>              pictures of the metric callbacks (confusion, UMAP)
    wandb/                      W&B offline files
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

# -- layout -----------------------------------------------------------------------------------
RUN_JSON = "run.json"
CONFIG_YAML = "config.yaml"
CHECKPOINTS_DIR = "checkpoints"
LAST_CKPT = "last.ckpt"
LAST_INFO = "last.json"
CSV_DIR = "csv"
METRICS_CSV = "metrics.csv"
PER_SAMPLE_DIR = "per_sample"
FIGURES_DIR = "figures"
WANDB_DIR = "wandb"
#: the stage whose per-sample file ``analyze`` reads
TEST_STAGE = "test"


def per_sample_file(stage: str) -> Path:
    """``per_sample/<stage>.npz``, relative to the run folder."""
    return Path(PER_SAMPLE_DIR) / f"{stage}.npz"


#: ``per_sample/test.npz``: the file analyze reads (``index``, ``label``, ``pred`` + metric columns)
PER_SAMPLE_TEST = per_sample_file(TEST_STAGE)
#: ``checkpoints/last.ckpt``: what ``--run.resume auto`` continues from
LAST_CKPT_FILE = Path(CHECKPOINTS_DIR) / LAST_CKPT
#: ``csv/metrics.csv``: the CSV log a resume truncates to the checkpoint's step
METRICS_CSV_FILE = Path(CSV_DIR) / METRICS_CSV

# -- run.json -----------------------------------------------------------------------------------
#: every ``status`` run.json can hold; ``analyze`` reads only :data:`COMPLETE` runs
STATUSES = ("running", "complete", "incomplete", "failed", "interrupted")
COMPLETE = "complete"


class RunJson(TypedDict, total=False):
    """The keys of ``run.json`` that other code reads (writers may add more; all are optional).

    Written by callbacks/run_summary.py from the LightningModule, the datamodule, every callback
    with a ``run_summary`` and training/lightning_cli.py's extras; ``status`` is always the last key of the file.
    """

    # what was trained (LightningModule, datamodule)
    method: str
    backbone: str | None
    encoder_parameters: int
    head_epochs: int
    dataset: str
    num_classes: int
    batch_size: int
    views: int
    val_source: str
    augment_on: str
    # the pruning schedule (callbacks/pruning, SDCLR); absent for a dense run
    pruning: str
    target_sparsity: float
    achieved_sparsity: float
    achieved_sparsity_targets: float
    pruning_targets: Any
    pruning_scope: str
    pruning_granularity: str
    pruning_events: list[list[float]]
    mask_sha256_per_rank: list[str]
    final_oscillation: float
    mean_oscillation: float
    oneshot_mode: str
    parent_run: dict[str, Any]
    # cli.py
    wandb_run_id: str | None
    # callbacks/run_summary.py: how far it got
    seed: int | None
    cuda_visible_devices: str | None
    max_epochs: int | None
    epochs: int
    epochs_trained: int
    steps_trained: int
    global_step: int
    planned_steps: int | None
    run_dir: str
    fit_seconds: float
    segments: list[dict[str, Any]]
    test_metrics: dict[str, float]
    test_acc: float
    # metric callbacks (callbacks/metrics)
    test_samples: int
    per_sample_acc: float
    per_class_acc: dict[str, float | None]
    per_sample_file: str
    predictions_seconds: float
    q_score_mean: float
    q_score_std: float
    z_score_mean: float
    z_score_std: float
    l1_norm_mean: float
    l1_norm_std: float
    q_score_seconds: float
    pd_mean: float | None
    pd_mean_correct: float | None
    pd_mean_wrong: float | None
    pd_probes: int
    pd_train_samples: int
    pd_train_augmentation: str
    pd_k: int
    pd_reference: str
    pd_seconds: float
    pd_seconds_forward: float
    pd_seconds_knn: float
    umap_png: str
    umap_seconds: float
    # the verdict (written last)
    status: str
    status_reason: str | None


# -- methods and schedules: keys, display names, the one ordering ---------------------------------
#: the ``pruning`` of a dense run (or of one pruned to a target of 0)
DENSE = "dense"
#: run.json ``method`` of a LightningModule class (others: the class name minus "Model", lower case)
MODEL_CLASS_METHODS = {"SupervisedClassifier": "sup", "SupConModel": "supcon"}
#: display names, as in the paper (``supcon`` -> ``SCL``)
METHOD_NAMES = {"sup": "Sup", "supcon": "SCL", "simclr": "SimCLR", "byol": "BYOL"}
PRUNING_NAMES = {
    DENSE: "dense", "gmp": "GMP", "delta_gmp": "ΔGMP", "oneshot": "One-Shot", "synccp": "SyncCP", "regrow": "regrow",
}  # fmt: skip
#: the order of methods and schedules in every table and figure; others follow alphabetically
METHOD_ORDER = ("sup", "supcon", "simclr", "byol")
PRUNING_ORDER = ("gmp", "delta_gmp", "oneshot")


def method_name(method: str) -> str:
    """Display name of a method (``supcon`` -> ``SCL``, as in the paper)."""
    return METHOD_NAMES.get(method, method)


def pruning_name(pruning: str) -> str:
    """Display name of a pruning schedule (``delta_gmp`` -> ``ΔGMP``)."""
    return PRUNING_NAMES.get(pruning, pruning)


def method_key(method: str) -> tuple[int, str]:
    """Sort key: Sup, SCL, SimCLR, BYOL, then any other method alphabetically."""
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def pruning_key(pruning: str) -> tuple[int, str]:
    """Sort key: GMP, ΔGMP, One-Shot, then any other schedule alphabetically."""
    return (PRUNING_ORDER.index(pruning) if pruning in PRUNING_ORDER else len(PRUNING_ORDER), pruning)


__all__ = [
    "CHECKPOINTS_DIR",
    "COMPLETE",
    "CONFIG_YAML",
    "CSV_DIR",
    "DENSE",
    "FIGURES_DIR",
    "LAST_CKPT",
    "LAST_CKPT_FILE",
    "LAST_INFO",
    "METHOD_NAMES",
    "METHOD_ORDER",
    "METRICS_CSV",
    "METRICS_CSV_FILE",
    "MODEL_CLASS_METHODS",
    "PER_SAMPLE_DIR",
    "PER_SAMPLE_TEST",
    "PRUNING_NAMES",
    "PRUNING_ORDER",
    "RUN_JSON",
    "RunJson",
    "STATUSES",
    "TEST_STAGE",
    "WANDB_DIR",
    "method_key",
    "method_name",
    "per_sample_file",
    "pruning_key",
    "pruning_name",
]
