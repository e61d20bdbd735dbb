"""Pruning maths against independent oracles.

Global/layer-wise masks are compared with ``torch.nn.utils.prune`` (used here only as an oracle),
the N:M and channel masks with properties checked group by group / filter by filter with norms
computed in the test, and the schedule with the Zhu & Gupta formula written out below.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

from common.errors import ConfigError
from sparsity.masks import (
    channel_masks,
    compute_masks,
    global_magnitude_masks,
    layer_sparsities,
    layerwise_magnitude_masks,
    nm_masks,
    sparsity_of,
    validate_mask_options,
)
from sparsity.schedules import cubic_sparsity, event_index, event_steps


def random_weights(seed: int) -> dict[str, torch.Tensor]:
    """Conv and Linear shaped tensors with distinct magnitudes (continuous random values)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "conv1.weight": torch.randn(8, 4, 3, 3, generator=g),
        "conv2.weight": torch.randn(16, 8, 3, 3, generator=g) * 0.5,
        "fc.weight": torch.randn(10, 16, generator=g) * 2.0,
    }


def tied_weights(seed: int) -> dict[str, torch.Tensor]:
    """Many exact ties: small integers, lots of zeros."""
    g = torch.Generator().manual_seed(seed)
    return {
        "a": torch.randint(-2, 3, (8, 4, 3, 3), generator=g).float(),
        "b": torch.randint(-1, 2, (12, 8), generator=g).float(),
    }


def oracle_global(tensors: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Masks from torch.nn.utils.prune.global_unstructured(L1Unstructured, amount=sparsity)."""
    holders = {}
    for name, w in tensors.items():
        holder = nn.Module()
        holder.weight = nn.Parameter(w.clone())
        holders[name] = holder
    tprune.global_unstructured(
        [(h, "weight") for h in holders.values()], pruning_method=tprune.L1Unstructured, amount=sparsity
    )
    return {name: h.weight_mask.bool() for name, h in holders.items()}


# --------------------------------------------------------------------------------------------------
# global / layer-wise unstructured
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_global_masks_equal_torch_prune_oracle(seed: int, sparsity: float) -> None:
    w = random_weights(seed)
    ours = global_magnitude_masks(w, sparsity)
    ref = oracle_global(w, sparsity)
    for name in w:
        assert ours[name].dtype == torch.bool and ours[name].shape == w[name].shape
        assert torch.equal(ours[name], ref[name]), name
    total = sum(t.numel() for t in w.values())
    assert sum(int((~m).sum()) for m in ours.values()) == round(sparsity * total)


@pytest.mark.parametrize("sparsity", [0.1, 0.25, 0.5, 0.65, 0.8])
def test_global_masks_exact_count_with_ties(sparsity: float) -> None:
    w = tied_weights(3)
    masks = global_magnitude_masks(w, sparsity)
    total = sum(t.numel() for t in w.values())
    pruned = torch.cat([w[k][~masks[k]].abs() for k in w])
    kept = torch.cat([w[k][masks[k]].abs() for k in w])
    assert pruned.numel() == round(sparsity * total)
    assert pruned.max() <= kept.min()  # one threshold: nothing kept is smaller than anything pruned
    # deterministic: ties broken the same way every call
    again = global_magnitude_masks({k: v.clone() for k, v in w.items()}, sparsity)
    assert all(torch.equal(masks[k], again[k]) for k in w)


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_layerwise_masks_equal_l1_unstructured_per_tensor(sparsity: float) -> None:
    w = random_weights(4)
    ours = layerwise_magnitude_masks(w, sparsity)
    for name, t in w.items():
        ref = tprune.L1Unstructured(amount=sparsity).compute_mask(t, torch.ones_like(t)).bool()
        assert torch.equal(ours[name], ref), name
        assert int((~ours[name]).sum()) == round(sparsity * t.numel())


def test_no_revival_with_current_masks() -> None:
    w = random_weights(5)
    first = global_magnitude_masks(w, 0.5)
    # weights move after pruning: pruned entries get large values (as if momentum pushed them)
    moved = {k: torch.where(first[k], v, torch.full_like(v, 100.0)) for k, v in w.items()}
    second = global_magnitude_masks(moved, 0.7, current_masks=first)
    total = sum(t.numel() for t in w.values())
    assert sum(int((~m).sum()) for m in second.values()) == round(0.7 * total)
    for k in w:
        assert not (second[k] & ~first[k]).any(), f"{k}: a pruned weight came back"
    # asking for less keeps what is pruned (more zeros than asked, none revived)
    lower = global_magnitude_masks(moved, 0.2, current_masks=second)
    assert all(torch.equal(lower[k], second[k]) for k in w)
    # regrowth on request: the large pruned weights come back
    regrown = global_magnitude_masks(moved, 0.7, current_masks=second, allow_regrowth=True)
    assert any((regrown[k] & ~second[k]).any() for k in w)
    # the same holds layer-wise
    lw = layerwise_magnitude_masks(moved, 0.7, current_masks=first)
    for k in w:
        assert not (lw[k] & ~first[k]).any()


def test_min_layer_density_keeps_every_layer_alive_with_exact_total() -> None:
    w = random_weights(6)
    w["tiny.weight"] = torch.randn(4, 16) * 1e-6  # would be wiped out by a global threshold
    plain = global_magnitude_masks(w, 0.9)
    assert sparsity_of(plain["tiny.weight"]) == 1.0
    guarded = global_magnitude_masks(w, 0.9, min_layer_density=0.05)
    total = sum(t.numel() for t in w.values())
    assert sum(int((~m).sum()) for m in guarded.values()) == round(0.9 * total)
    for name, m in guarded.items():
        assert int(m.sum()) >= math.ceil(0.05 * m.numel()), name
    # the protected entries of the small layer are its largest |w|
    tiny, mask = w["tiny.weight"].abs(), guarded["tiny.weight"]
    assert tiny[~mask].max() <= tiny[mask].min()
    with pytest.raises(ConfigError) as err:
        global_magnitude_masks(w, 0.9, min_layer_density=0.2)
    assert str(err.value) == "min_layer_density=0.2 cannot be met at sparsity=0.9; it must be in [0, 0.1]"


# --------------------------------------------------------------------------------------------------
# N:M
# --------------------------------------------------------------------------------------------------
def groups_along_input_channels(t: torch.Tensor, m: int) -> torch.Tensor:
    """[num_groups, m]: written with explicit index loops, independent of the library's reshape."""
    rows = []
    out_c, in_c = t.shape[:2]
    kernel = list(torch.cartesian_prod(*[torch.arange(s) for s in t.shape[2:]])) if t.dim() > 2 else [()]
    for o in range(out_c):
        for pos in kernel:
            pos = tuple(int(p) for p in torch.as_tensor(pos).reshape(-1))
            for start in range(0, in_c, m):
                rows.append(torch.stack([t[(o, start + j, *pos)] for j in range(m)]))
    return torch.stack(rows)


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (1, 2), (4, 8), (4, 4)])
def test_nm_property_on_every_group(n: int, m: int) -> None:
    w = {"conv.weight": torch.randn(4, 8, 3, 3), "fc.weight": torch.randn(6, 16)}
    masks = nm_masks(w, n, m)
    for name, t in w.items():
        g_mask = groups_along_input_channels(masks[name], m)
        g_abs = groups_along_input_channels(t.abs(), m)
        assert (g_mask.sum(dim=1) == n).all(), name
        for row_m, row_a in zip(g_mask, g_abs):
            if n < m:
                assert row_a[~row_m].max() <= row_a[row_m].min()
        assert sparsity_of(masks[name]) == pytest.approx(1 - n / m)


def test_nm_ties_and_no_revival() -> None:
    w = {"fc.weight": torch.zeros(3, 8)}  # all tied
    masks = nm_masks(w, 2, 4)
    assert (groups_along_input_channels(masks["fc.weight"], 4).sum(dim=1) == 2).all()
    current = {"fc.weight": torch.ones(3, 8, dtype=torch.bool)}
    current["fc.weight"][0, :3] = False  # one group already has 3 pruned: it stays with 1 kept
    again = nm_masks({"fc.weight": torch.randn(3, 8)}, 2, 4, current_masks=current)
    assert not (again["fc.weight"] & ~current["fc.weight"]).any()
    assert int(again["fc.weight"][0, :4].sum()) == 1


def test_nm_errors() -> None:
    with pytest.raises(ConfigError) as err:
        nm_masks({"stem.weight": torch.randn(16, 3, 3, 3)}, 2, 4)
    assert str(err.value) == (
        "m=4 does not divide the input channels of stem.weight (shape [16, 3, 3, 3], 3 input channels); "
        "m must divide dim 1 of every pruned weight"
    )
    with pytest.raises(ConfigError) as err:
        nm_masks({"fc.weight": torch.randn(4, 8)}, 5, 4)
    assert str(err.value) == "n=5 is out of range; it must be in [1, 4]"


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_gradual_nm_reaches_exact_pattern(scope: str) -> None:
    w = {"conv.weight": torch.randn(4, 8, 3, 3), "fc.weight": torch.randn(6, 16) * 3}
    total = sum(t.numel() for t in w.values())
    current = None
    for s in (0.1, 0.3, 0.45, 0.5):
        current = compute_masks(w, s, scope=scope, granularity="nm", n=2, m=4, current_masks=current)
        if scope == "global":
            assert sum(int((~c).sum()) for c in current.values()) == round(s * total)
        for name in w:  # never more than m-n pruned per group
            assert (groups_along_input_channels(current[name], 4).sum(dim=1) >= 2).all()
    for name in w:
        assert (groups_along_input_channels(current[name], 4).sum(dim=1) == 2).all()


# --------------------------------------------------------------------------------------------------
# channel
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.75])
def test_channel_masks_prune_smallest_norm_filters(norm: int, sparsity: float) -> None:
    w = {"conv.weight": torch.randn(8, 4, 3, 3), "fc.weight": torch.randn(12, 16)}
    masks = channel_masks(w, sparsity, norm)
    for name, t in w.items():
        norms = torch.tensor(
            [sum(abs(float(v)) ** norm for v in t[o].flatten()) ** (1 / norm) for o in range(t.shape[0])]
        )
        mask = masks[name].reshape(t.shape[0], -1)
        filter_kept = mask.all(dim=1)
        assert torch.equal(filter_kept, mask.any(dim=1)), "whole filters only"
        assert int((~filter_kept).sum()) == round(sparsity * t.shape[0])
        assert norms[~filter_kept].max() <= norms[filter_kept].min()
        ref = tprune.LnStructured(amount=sparsity, n=norm, dim=0).compute_mask(t, torch.ones_like(t)).bool()
        assert torch.equal(masks[name], ref), name


def test_channel_masks_no_revival() -> None:
    w = {"conv.weight": torch.randn(8, 4, 3, 3)}
    first = channel_masks(w, 0.25, 2)
    moved = {"conv.weight": torch.where(first["conv.weight"], w["conv.weight"], torch.full_like(w["conv.weight"], 9.0))}
    second = channel_masks(moved, 0.5, 2, current_masks=first)
    assert not (second["conv.weight"] & ~first["conv.weight"]).any()
    assert sparsity_of(second) == 0.5


# --------------------------------------------------------------------------------------------------
# measuring and validation
# --------------------------------------------------------------------------------------------------
def test_sparsity_of_weights_and_masks() -> None:
    w = {"a": torch.tensor([0.0, 1.0, 0.0, 2.0]), "b": torch.tensor([[0.0, 3.0]])}
    assert sparsity_of(w) == pytest.approx(3 / 6)
    assert sparsity_of(w["a"]) == 0.5
    assert sparsity_of({"m": torch.tensor([True, False, False, False])}) == 0.75
    assert layer_sparsities(w) == {"a": 0.5, "b": 0.5}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity": 1.0}, "final_sparsity=1.0 is out of range; it must be in [0, 1)"),
        ({"sparsity": -0.1}, "final_sparsity=-0.1 is out of range; it must be in [0, 1)"),
        ({"scope": "local"}, "scope='local' is not allowed; choose one of 'global', 'layerwise'"),
        (
            {"granularity": "block"},
            "granularity='block' is not allowed; choose one of 'unstructured', 'nm', 'channel'",
        ),
        ({"granularity": "nm", "n": 3, "m": 2}, "n=3 is out of range; it must be in [1, 2]"),
        (
            {"granularity": "nm", "sparsity": 0.9},
            "final_sparsity=0.9 is out of range for granularity='nm' with n=2, m=4; it must be in [0, 0.5] "
            "(1 - n/m gives the exact 2:4 pattern)",
        ),
        (
            {"granularity": "channel"},
            "scope='global' is not allowed with granularity='channel'; choose 'layerwise' "
            "(filter norms of different layers are not comparable)",
        ),
        ({"norm": 3}, "norm=3 is not allowed; choose one of 1, 2"),
        ({"min_layer_density": 0.6}, "min_layer_density=0.6 is out of range; it must be in [0, 0.5]"),
    ],
)
def test_mask_option_errors(kwargs: dict, message: str) -> None:
    args = {"sparsity": 0.5, "scope": "global", "granularity": "unstructured", "n": 2, "m": 4, "norm": 1,
            "min_layer_density": 0.0}
    args.update(kwargs)
    with pytest.raises(ConfigError) as err:
        validate_mask_options(**args)
    assert str(err.value) == message


# --------------------------------------------------------------------------------------------------
# schedule
# --------------------------------------------------------------------------------------------------
def zhu_gupta(t: int, s_i: float, s_f: float, t0: int, n_dt: int) -> float:
    """REFERENCE §2: s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n Δt))^3."""
    return s_f + (s_i - s_f) * (1 - (t - t0) / n_dt) ** 3


@pytest.mark.parametrize(
    ("s_i", "s_f", "begin", "end", "freq"),
    [(0.0, 0.9, 1000, 20000, 500), (0.0, 0.5, 125, 2476, 62), (0.2, 0.7, 0, 100, 7), (0.0, 0.9, 10, 20, 1)],
)
def test_cubic_schedule_matches_formula_as_staircase(s_i: float, s_f: float, begin: int, end: int, freq: int) -> None:
    kw = dict(initial=s_i, final=s_f, begin_step=begin, end_step=end, frequency=freq)
    for step in range(0, begin):
        assert cubic_sparsity(step, **kw) == s_i
    for step in range(begin, end):
        last_event = begin + (step - begin) // freq * freq
        expected = zhu_gupta(last_event, s_i, s_f, begin, end - begin)
        assert cubic_sparsity(step, **kw) == pytest.approx(expected, abs=1e-12)
    for step in (end, end + 1, end + 10 * freq, 10**7):
        assert cubic_sparsity(step, **kw) == s_f
    # held constant between events, changes only at events
    events = event_steps(begin_step=begin, end_step=end, frequency=freq)
    assert events[0] == begin and events[-1] == end and all(e <= end for e in events)
    changes = [t for t in range(begin, end + 1) if cubic_sparsity(t, **kw) != cubic_sparsity(t - 1, **kw)]
    assert set(changes) <= set(events)
    # the event index changes exactly at the events
    idx_changes = [
        t for t in range(1, end + 3 * freq)
        if event_index(t, begin_step=begin, end_step=end, frequency=freq)
        != event_index(t - 1, begin_step=begin, end_step=end, frequency=freq)
    ]
    assert idx_changes == [e for e in events if e > 0]
    # monotone non-decreasing
    values = [cubic_sparsity(t, **kw) for t in range(0, end + 2)]
    assert all(b >= a for a, b in zip(values, values[1:]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"final": 1.0}, "final_sparsity=1.0 is out of range; it must be in [0, 1)"),
        ({"initial": -0.5}, "initial_sparsity=-0.5 is out of range; it must be in [0, 1)"),
        ({"initial": 0.6, "final": 0.5}, "final_sparsity=0.5 is below initial_sparsity=0.6; it must be in [0.6, 1)"),
        ({"begin_step": 20, "end_step": 20}, "begin_step=20 must be smaller than end_step=20; begin_step must be in [0, 20)"),
        ({"frequency": 0}, "frequency=0 is out of range; it must be in [1, inf) optimiser steps"),
    ],
)
def test_schedule_errors(kwargs: dict, message: str) -> None:
    kw = dict(initial=0.0, final=0.9, begin_step=10, end_step=100, frequency=5)
    kw.update(kwargs)
    with pytest.raises(ConfigError) as err:
        cubic_sparsity(0, **kw)
    assert str(err.value) == message
