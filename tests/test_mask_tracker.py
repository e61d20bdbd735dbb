"""MaskTracker without Lightning: masks on weights, gradients and optimiser state, oscillation, checkpoints.

:class:`sparsity.tracker.MaskTracker` is the bookkeeping that the pruning callbacks and
SDCLR share, and it must work (and be testable) with no Trainer at all. Every case runs in a fresh
interpreter whose import hook refuses Lightning (the blocker of ``tests/test_imports.py``), and the
expected numbers are counted by hand in the comments, so a wrong mask, a missed gradient or a
mis-counted flip fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from test_imports import BLOCKER

REPO = Path(__file__).resolve().parents[1]

SCENARIO = textwrap.dedent(
    """
    import json
    import sys

    import torch
    from torch import nn

    from sparsity.tracker import MaskTracker

    out = {}
    # two tensors: "a" with 8 entries, "b" with 4
    a = nn.Parameter(torch.arange(1.0, 9.0))
    b = nn.Parameter(torch.arange(1.0, 5.0).reshape(2, 2))
    params = {"a": a, "b": b}
    mask_a = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool)
    mask_b = torch.tensor([[1, 0], [0, 1]], dtype=torch.bool)

    tracker = MaskTracker()
    tracker.masks = {"a": mask_a.clone(), "b": mask_b.clone()}
    tracker.bind(params, kind="pruning", of="prunable parameters")

    # weights: pruned entries become exactly 0, kept ones keep their values
    tracker.apply()
    out["a_after_apply"] = a.detach().tolist()
    out["b_after_apply"] = b.detach().tolist()

    # gradients: the pruned entries' gradients are zeroed
    a.grad = torch.full_like(a, 2.0)
    b.grad = None  # a parameter without a gradient is skipped, not an error
    tracker.mask_gradients()
    out["a_grad"] = a.grad.tolist()

    # optimiser state: momentum buffers of pruned entries are zeroed
    opt = torch.optim.SGD([a], lr=0.1, momentum=0.9)
    a.grad = torch.ones_like(a)
    opt.step()
    tracker.mask_optimizer_state([opt])
    out["a_momentum"] = opt.state[a]["momentum_buffer"].tolist()

    # oscillation: the first change is counted against the dense network:
    # a loses 4 of 8, b loses 2 of 4 -> 6 of 12 entries flipped
    first = tracker.record({}, step=3, target=0.5, measured=0.5)
    out["first"] = [first.flipped, first.newly_pruned, first.revived, first.per_layer]
    # second change: a [1,1,1,1,0,0,0,0] -> [1,1,0,0,1,1,0,0] flips entries 2,3,4,5 (2 pruned, 2 revived);
    # b [[1,0],[0,1]] -> [[1,0],[1,0]] flips (1,0) and (1,1) (1 revived, 1 pruned): 6 of 12 entries
    previous = tracker.masks
    tracker.masks = {
        "a": torch.tensor([1, 1, 0, 0, 1, 1, 0, 0], dtype=torch.bool),
        "b": torch.tensor([[1, 0], [1, 0]], dtype=torch.bool),
    }
    second = tracker.record(previous, step=7, target=0.5, measured=0.5)
    out["second"] = [second.flipped, second.newly_pruned, second.revived, second.per_layer]
    out["events"] = tracker.events
    out["metrics"] = MaskTracker.change_metrics(second, "pruning/")
    out["summary"] = tracker.dynamics_summary()

    # checkpoint round trip under an owner's own key names
    tracker.last_event = 2
    tracker.cost.total.add(10.0, 4.0)
    keys = {"masks": "target_masks", "last_event": "target_event", "events": "target_events", "flops": "target_flops"}
    state = tracker.state_dict(keys)
    out["state_keys"] = list(state)
    out["state_on_cpu"] = all(m.device.type == "cpu" for m in state["target_masks"].values())
    restored = MaskTracker()
    restored.load_state_dict(state, keys)
    out["restored_masks_equal"] = all(torch.equal(restored.masks[n], tracker.masks[n]) for n in tracker.masks)
    out["restored"] = [restored.last_event, restored.events, restored.cost.state_dict() == tracker.cost.state_dict()]
    out["sha_equal"] = restored.sha256() == tracker.sha256()
    # a restored tracker is unbound: applying does nothing until it is bound again
    w = nn.Parameter(torch.ones(8))
    restored.apply()
    restored.bind({"a": w, "b": nn.Parameter(torch.ones(2, 2))}, kind="pruning", of="prunable parameters")
    restored.apply()
    out["rebound_apply"] = w.detach().tolist()
    # a missing key loads as empty
    empty = MaskTracker()
    empty.load_state_dict({}, keys)
    out["empty"] = [empty.masks, empty.events, empty.last_event]

    # one flipped entry changes the digest
    restored.masks["b"][0, 1] = True
    out["sha_after_flip_differs"] = restored.sha256() != tracker.sha256()

    # masks that do not fit the model
    try:
        tracker.bind({"a": a}, kind="pruning", of="prunable parameters")
        out["name_error"] = None
    except ValueError as error:
        out["name_error"] = str(error)
    try:
        tracker.bind({"a": nn.Parameter(torch.ones(4)), "b": b}, kind="pruning", of="prunable parameters")
        out["shape_error"] = None
    except ValueError as error:
        out["shape_error"] = str(error)

    out["lightning_imported"] = sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning"))
    print(json.dumps(out))
    """
)


def _run_without_lightning() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER + SCENARIO], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_mask_tracker_without_lightning() -> None:
    out = _run_without_lightning()
    assert out["lightning_imported"] == []

    # weights, gradients, optimiser state
    assert out["a_after_apply"] == [1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]
    assert out["b_after_apply"] == [[1.0, 0.0], [0.0, 4.0]]
    assert out["a_grad"] == [2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0]
    assert out["a_momentum"] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]

    # oscillation against the hand counts
    assert out["first"] == [6 / 12, 6 / 12, 0.0, {"a": 4 / 8, "b": 2 / 4}]
    assert out["second"] == [6 / 12, 3 / 12, 3 / 12, {"a": 4 / 8, "b": 2 / 4}]
    assert out["events"] == [
        {"step": 3, "target": 0.5, "measured": 0.5, "oscillation": 0.5},
        {"step": 7, "target": 0.5, "measured": 0.5, "oscillation": 0.5},
    ]
    assert out["metrics"] == {
        "pruning/oscillation": 0.5,
        "pruning/newly_pruned": 0.25,
        "pruning/revived": 0.25,
        "pruning/oscillation/a": 0.5,
        "pruning/oscillation/b": 0.5,
    }
    # the mean leaves out the first change (a pruning step, measured against the dense network)
    assert out["summary"]["final_oscillation"] == 0.5 and out["summary"]["mean_oscillation"] == 0.5

    # checkpoint round trip
    assert out["state_keys"] == ["target_masks", "target_event", "target_events", "target_flops"]
    assert out["state_on_cpu"] and out["restored_masks_equal"] and out["sha_equal"]
    assert out["restored"] == [2, out["events"], True]
    assert out["rebound_apply"] == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]  # the second masks of "a"
    assert out["empty"] == [{}, [], None]
    assert out["sha_after_flip_differs"]

    # a checkpoint that does not fit the model
    assert out["name_error"] == "pruning masks do not match the model's prunable parameters; differing names: ['b']"
    assert out["shape_error"] == "pruning mask for a has shape (8,), the parameter (4,)"
