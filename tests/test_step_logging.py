"""What a training step logs is what Lightning's own ``self.log`` recorded, at a fraction of its cost.

``RepresentationModule.log_train`` / ``log_train_metric`` keep a step's values on the device and call
``self.log`` only when the loggers write (every ``log_every_n_steps``, and at a stop) and at the end of
an epoch. The reference here is Lightning itself: the same modules with those two methods turned back
into plain ``self.log`` calls, trained from the same seed, must write the same CSV (every value at
every step: ``<name>_step``, the batch-size-weighted ``<name>_epoch`` with a partial last batch, the
accuracies, BYOL's ``train/tau``), over an epoch cut short by ``max_steps`` too.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
from conftest import REPO  # noqa: F401 - puts the repository on sys.path
from lightning.pytorch.loggers import CSVLogger
from ssl_helpers import WRN_SMALL, tiny_byol
from torchmetrics import Metric

from datamodules import SyntheticDataModule
from lightning_modules import SupConModel, SupervisedClassifier


class LightningLogs:
    """``log_train`` / ``log_train_metric`` as the plain ``self.log`` calls they replace."""

    def log_train(self: Any, name: str, value: Any, batch: Any, *, on_step: bool = True, on_epoch: bool = True, sync_dist: bool = True) -> None:
        self.log(name, value, on_step=on_step, on_epoch=on_epoch, sync_dist=sync_dist)

    def log_train_metric(self: Any, name: str, metric: Metric, *, prog_bar: bool = False) -> None:
        self.log(name, metric, on_step=False, on_epoch=True, prog_bar=prog_bar)


class PlainSup(LightningLogs, SupervisedClassifier):
    pass


class PlainSupCon(LightningLogs, SupConModel):
    pass


def _sup(reference: bool) -> pl.LightningModule:
    return (PlainSup if reference else SupervisedClassifier)(**WRN_SMALL, milestones=[100])


def _supcon(reference: bool) -> pl.LightningModule:
    return (PlainSupCon if reference else SupConModel)(**WRN_SMALL, proj_hidden_dim=32, proj_dim=16, head_epochs=1, head_batch_size=24)


def _byol(reference: bool) -> pl.LightningModule:
    module = tiny_byol()
    if reference:
        module.__class__ = type("PlainBYOL", (LightningLogs, module.__class__), {})
    return module


CASES = {  # module, views, data sizes, batch, Trainer arguments: partial last batches (100 = 3 x 32 + 4)
    "sup": (_sup, 1, 100, 32, {"max_epochs": 2, "log_every_n_steps": 3}),
    "sup_max_steps": (_sup, 1, 100, 32, {"max_epochs": 3, "log_every_n_steps": 2, "max_steps": 6}),
    "supcon": (_supcon, 2, 100, 32, {"max_epochs": 2, "log_every_n_steps": 2}),
    "byol": (_byol, 2, 100, 32, {"max_epochs": 2, "log_every_n_steps": 3}),
}


def _fit(case: str, reference: bool, tmp: Path) -> list[tuple[str, str, str]]:
    make, views, size, batch, kwargs = CASES[case]
    pl.seed_everything(0)
    module = make(reference)
    data = SyntheticDataModule(train_size=size, test_size=16, batch_size=batch, num_workers=0, views=views,
                               augmentation="contrastive" if views == 2 else "supervised")  # fmt: skip
    logger = CSVLogger(tmp, name=case, version="reference" if reference else "new")
    calls = {"in_step": 0, "elsewhere": 0}  # self.log calls made inside training_step, and elsewhere
    log, step = module.log, module.training_step
    inside = False

    def counting_log(*args: Any, **kw: Any) -> None:
        calls["in_step" if inside else "elsewhere"] += 1
        log(*args, **kw)

    def counting_step(*args: Any, **kw: Any) -> Any:
        nonlocal inside
        inside = True
        try:
            return step(*args, **kw)
        finally:
            inside = False

    module.log, module.training_step = counting_log, counting_step  # type: ignore[method-assign]
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=logger, limit_val_batches=0, num_sanity_val_steps=0, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, deterministic=True, **kwargs,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    rows = list(csv.DictReader(Path(logger.log_dir, "metrics.csv").open(newline="")))
    values = sorted((r["step"], k, v) for r in rows for k, v in r.items() if v != "" and k != "step" and not k.endswith("time_s"))  # not the clock
    return values, calls, int(trainer.global_step)


@pytest.mark.parametrize("case", list(CASES))
def test_the_csv_is_what_lightnings_self_log_wrote(case: str, tmp_path: Path) -> None:
    want, reference_calls, steps = _fit(case, True, tmp_path)
    got, calls, _ = _fit(case, False, tmp_path)
    assert "train/loss_step" in {k for _, k, _ in want} and "train/loss_epoch" in {k for _, k, _ in want}
    assert got == want
    # Lightning's self.log: at least once in every training step; now never there, only when the
    # loggers write (one call a name) and at the epoch ends
    assert reference_calls["in_step"] >= steps and calls["in_step"] == 0, (calls, reference_calls, steps)
    every = CASES[case][4]["log_every_n_steps"]
    assert calls["elsewhere"] - reference_calls["elsewhere"] <= 2 * (steps // every + 1) + 3 * CASES[case][4]["max_epochs"]


def test_the_host_timer_reports_each_hook_per_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/hosttime.py, the CPU proxy for a GPU step's host time: every wrapped hook of a real
    fit is reported in ms per step."""
    from benchmarks.hosttime import HookTimer

    out = tmp_path / "host.json"
    monkeypatch.setenv("HOSTTIME_OUT", str(out))
    pl.seed_everything(0)
    data = SyntheticDataModule(train_size=64, test_size=16, batch_size=8, num_workers=0)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, callbacks=[HookTimer()], limit_val_batches=0,
                         num_sanity_val_steps=0, enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(_sup(False), datamodule=data)
    result = json.loads(out.read_text())
    assert result["steps"] == 8
    labels = {"module.log", "module.log_train", "module.log_train_metric", "module.training_step", "module.on_train_batch_start",
              "module.on_train_batch_end", "data.on_after_batch_transfer", "progress_bar.on_train_batch_end"}  # fmt: skip
    assert set(result["ms_per_step"]) == labels and all(v >= 0 for v in result["ms_per_step"].values())
    assert result["ms_per_step"]["module.training_step"] > result["ms_per_step"]["module.log_train"] > 0
