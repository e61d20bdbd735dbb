"""supcon_loss against an independent NumPy implementation of Khosla et al.'s L_out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.errors import ConfigError
from lightning_modules.losses import supcon_loss

REPO = Path(__file__).resolve().parents[1]


def numpy_supcon(features: np.ndarray, labels: np.ndarray | None, temperature: float,
                 base_temperature: float | None, contrast_mode: str = "all") -> float:  # fmt: skip
    """Loop-by-loop reference: anchors over (sample, view); positives share the label; L_out."""
    batch, views, _ = features.shape
    labels = np.arange(batch) if labels is None else labels
    rows = [(i, v) for v in range(views) for i in range(batch)]
    anchors = [(i, 0) for i in range(batch)] if contrast_mode == "one" else rows
    scale = 1.0 if base_temperature is None else temperature / base_temperature
    losses = []
    for ai, av in anchors:
        a = features[ai, av].astype(np.float64)
        others = [(j, w) for (j, w) in rows if (j, w) != (ai, av)]
        sims = np.array([a @ features[j, w].astype(np.float64) / temperature for (j, w) in others])
        log_den = np.log(np.sum(np.exp(sims)))
        pos = [k for k, (j, _) in enumerate(others) if labels[j] == labels[ai]]
        if not pos:
            losses.append(0.0)
            continue
        losses.append(-scale * np.mean([sims[k] - log_den for k in pos]))
    return float(np.mean(losses))


def numpy_nt_xent(z1: np.ndarray, z2: np.ndarray, temperature: float) -> float:
    """SimCLR's NT-Xent over 2N views: -log(exp(s_ij/T) / sum_{k != i} exp(s_ik/T)), averaged."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    n = len(z1)
    sim = z @ z.T / temperature
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        den = np.sum(np.exp(np.delete(sim[i], i)))
        total += -(sim[i, j] - np.log(den))
    return total / (2 * n)


def _features(batch: int, views: int, dim: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(batch, views, dim, generator=g), dim=-1)


@pytest.mark.parametrize("batch,views,dim", [(4, 2, 8), (9, 2, 16), (6, 3, 5), (16, 4, 32)])
@pytest.mark.parametrize("pattern", ["random", "distinct", "equal", "none"])
@pytest.mark.parametrize("temperature,base", [(0.5, 0.07), (0.1, None), (1.0, 1.0)])
def test_supcon_matches_numpy_reference(batch, views, dim, pattern, temperature, base) -> None:
    feats = _features(batch, views, dim, seed=batch * 31 + views)
    labels = {
        "random": torch.randint(0, 3, (batch,), generator=torch.Generator().manual_seed(1)),
        "distinct": torch.arange(batch),
        "equal": torch.zeros(batch, dtype=torch.long),
        "none": None,
    }[pattern]
    got = supcon_loss(feats, labels, temperature=temperature, base_temperature=base).item()
    want = numpy_supcon(feats.numpy(), None if labels is None else labels.numpy(), temperature, base)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("views", [2, 3])
def test_contrast_mode_one_uses_view_zero_anchors(views: int) -> None:
    feats = _features(8, views, 16, seed=3)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 3, 4])
    got = supcon_loss(feats, labels, temperature=0.2, base_temperature=0.07, contrast_mode="one").item()
    want = numpy_supcon(feats.numpy(), labels.numpy(), 0.2, 0.07, contrast_mode="one")
    assert got == pytest.approx(want, rel=1e-5)


def test_equals_nt_xent_without_labels() -> None:
    feats = _features(12, 2, 32, seed=7)
    got = supcon_loss(feats, None, temperature=0.5).item()
    assert got == pytest.approx(numpy_nt_xent(feats[:, 0].numpy(), feats[:, 1].numpy(), 0.5), rel=1e-6)
    # all-distinct labels are the same thing as no labels
    assert supcon_loss(feats, torch.arange(12), temperature=0.5).item() == pytest.approx(got, rel=1e-6)


def test_anchor_without_positive_contributes_zero() -> None:
    feats = _features(3, 1, 4, seed=0)  # one view: only same-label samples are positives
    labels = torch.tensor([0, 0, 1])  # sample 2 has no positive
    got = supcon_loss(feats, labels, temperature=0.5).item()
    want = numpy_supcon(feats.numpy(), labels.numpy(), 0.5, None)
    assert np.isfinite(got) and got == pytest.approx(want, rel=1e-6)


def test_gradient_is_finite_and_nonzero() -> None:
    feats = _features(8, 2, 16, seed=2).requires_grad_(True)
    supcon_loss(feats, torch.randint(0, 3, (8,)), temperature=0.5, base_temperature=0.07).backward()
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"temperature": 0.0}, r"temperature=0.0 is out of range; it must be in \(0, inf\)"),
        ({"temperature": 0.5, "base_temperature": -1.0}, r"base_temperature=-1.0 is out of range"),
        ({"temperature": 0.5, "contrast_mode": "some"}, r"contrast_mode='some' is not allowed; choose one of 'all', 'one'"),
    ],
)
def test_bad_arguments_raise_one_clear_error(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        supcon_loss(_features(4, 2, 4, seed=0), **kwargs)


@pytest.mark.ddp
def test_two_process_ddp_matches_single_process(tmp_path: Path) -> None:
    """2 gloo ranks on halves of a batch: same loss and same encoder gradients as 1 process."""
    out = tmp_path / "ddp.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "ddp_supcon_worker.py"), str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["ddp_loss"] == pytest.approx(result["single_loss"], abs=1e-5)
    for name, grad in result["single_grads"].items():
        np.testing.assert_allclose(result["ddp_grads_rank0"][name], grad, atol=1e-5)
        np.testing.assert_allclose(result["ddp_grads_rank1"][name], grad, atol=1e-5)
