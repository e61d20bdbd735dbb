"""The module, datamodule and callback protocols of :mod:`common.protocols`.

Every training method and every DataModule of the project offers the protocols the callbacks ask
for; every ``run_summary`` has the one signature; an object that lacks a capability gets the one-line
error that names what is missing.
"""

from __future__ import annotations

import inspect

import lightning.pytorch as pl
import pytest

import callbacks.metrics as metric_callbacks
import callbacks.pruning as pruning_callbacks
from callbacks.compile import CompileEncoder
from common.errors import ConfigError
from common.protocols import (
    HasEncoder,
    MomentumPairs,
    NamedClasses,
    PlannedData,
    PlannedModule,
    ProbeData,
    Representation,
    RunSummaryContributor,
    missing_members,
    require,
)
from datamodules.fashion_mnist import FashionMNISTMiniDataModule
from datamodules.synthetic import SyntheticDataModule
from lightning_modules.byol import BYOLModel
from lightning_modules.sdclr import SDCLRModel
from lightning_modules.supcon import SupConModel
from lightning_modules.supervised import SupervisedClassifier

SMALL = {"backbone": "wrn", "depth": 10, "widen_factor": 1}


@pytest.mark.parametrize("cls", [SupervisedClassifier, SupConModel, BYOLModel, SDCLRModel])
def test_every_method_offers_the_module_protocols(cls: type) -> None:
    model = cls(**SMALL)
    for protocol in (Representation, HasEncoder, PlannedModule, RunSummaryContributor):
        assert missing_members(model, protocol) == [], (cls.__name__, protocol.__name__)
    assert isinstance(model, MomentumPairs) == (cls is BYOLModel)  # only BYOL has a momentum encoder


@pytest.mark.parametrize("cls", [SyntheticDataModule, FashionMNISTMiniDataModule])
def test_every_datamodule_offers_the_data_protocols(cls: type) -> None:
    dm = cls()
    for protocol in (PlannedData, ProbeData, NamedClasses, RunSummaryContributor):
        assert missing_members(dm, protocol) == [], (cls.__name__, protocol.__name__)


def test_run_summary_has_one_signature_everywhere() -> None:
    """Module, datamodule and every exported callback: ``run_summary(trainer, pl_module)``."""
    owners: list[type] = [SupervisedClassifier, SupConModel, BYOLModel, SDCLRModel, SyntheticDataModule]
    for package in (metric_callbacks, pruning_callbacks):
        owners += [obj for name in package.__all__ if inspect.isclass(obj := getattr(package, name))]
    seen = 0
    for owner in owners:
        if hasattr(owner, "run_summary"):
            params = list(inspect.signature(owner.run_summary).parameters)
            assert params == ["self", "trainer", "pl_module"], (owner.__name__, params)
            seen += 1
    assert seen >= 10  # the methods, the datamodule, pruning and metric callbacks were all looked at


def test_require_names_who_asks_and_what_is_missing() -> None:
    class Half:
        def encode(self, x):  # noqa: ANN001, ANN202 - a user's partial module
            return x

    with pytest.raises(ConfigError) as err:
        require(Half(), Representation, needed_by="callbacks MyMetric", role="model")
    assert str(err.value) == (
        "callbacks MyMetric needs a model offering Representation "
        "(encode, classify, prunable_parameters, probe_features); "
        "Half lacks classify, prunable_parameters, probe_features"
    )
    with pytest.raises(ConfigError, match="^callbacks X needs a data \\(ProbeData\\); none is attached to the trainer$"):
        require(None, ProbeData, needed_by="callbacks X", role="data")


def test_compile_encoder_refuses_a_module_without_an_encoder() -> None:
    class Plain(pl.LightningModule):
        pass

    with pytest.raises(ConfigError, match="^callbacks CompileEncoder needs a model offering HasEncoder \\(encoder\\); Plain lacks encoder$"):
        CompileEncoder().setup(None, Plain(), "fit")  # type: ignore[arg-type]
