import math

import pytest
import torch
from pydantic import ValidationError

from mape_unlearn.core.method import search
from mape_unlearn.core.method.search import (
    SearchSettings,
    budget,
    selection_objective,
    warm_start_greedy,
)


def _grads(n: int, layers: int, width: int, seed: int) -> torch.Tensor:
    """Correlated per-sample gradients, so the within-layer Fisher blocks are far from diagonal."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(n, layers, 3, generator=generator)
    mix = torch.randn(3, width, generator=generator)
    return base @ mix + 0.3 * torch.randn(n, layers, width, generator=generator)


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9])
def test_greedy_never_lowers_the_objective_and_keeps_the_budget(sparsity):
    forget_h, retain_h = _grads(40, 3, 6, 1), _grads(60, 3, 6, 2)
    forget_f, retain_f = _grads(40, 3, 50, 3), _grads(60, 3, 50, 4)
    selection, trace = warm_start_greedy(
        forget_h, forget_f, retain_h, retain_f, SearchSettings(sparsity=sparsity, lam=1.0)
    )
    assert int(selection.heads.sum()) == math.ceil((1 - sparsity) * 18 - 1e-9)
    assert int(selection.filters.sum()) == math.ceil((1 - sparsity) * 150 - 1e-9)
    for kind in ("heads", "filters"):
        values = [entry[f"objective_{kind}"] for entry in trace]
        assert all(b >= a - 1e-12 for a, b in zip(values, values[1:], strict=False))
    assert trace[-1]["objective_filters"] > trace[0]["objective_filters"]  # the greedy step helps
    assert trace[-1]["swaps_heads"] == 0 and trace[-1]["swaps_filters"] == 0  # converged
    recomputed = selection_objective(forget_f, retain_f, selection.filters, lam=1.0)
    assert recomputed == pytest.approx(trace[-1]["objective_filters"], rel=1e-9, abs=1e-12)


def test_greedy_keeps_each_layers_count_from_the_warm_start():
    forget_f, retain_f = _grads(30, 4, 40, 5), _grads(30, 4, 40, 6)
    forget_h, retain_h = _grads(30, 4, 4, 7), _grads(30, 4, 4, 8)
    warm, _ = warm_start_greedy(
        forget_h, forget_f, retain_h, retain_f, SearchSettings(0.8, max_sweeps=0)
    )
    refined, _ = warm_start_greedy(forget_h, forget_f, retain_h, retain_f, SearchSettings(0.8))
    assert torch.equal(warm.filters.sum(1), refined.filters.sum(1))
    assert not torch.equal(warm.filters, refined.filters)


def test_converged_selection_has_no_improving_swap():
    """After the sweeps no add-one-drop-one move within a layer raises J (brute-force check)."""
    forget, retain = _grads(25, 2, 8, 9), _grads(25, 2, 8, 10)
    heads = torch.zeros(25, 2, 2)
    selection, trace = warm_start_greedy(heads, forget, heads, retain, SearchSettings(sparsity=0.6))
    current = selection_objective(forget, retain, selection.filters, 1.0)
    assert current == pytest.approx(trace[-1]["objective_filters"], rel=1e-9)
    for layer in range(2):
        for inside in torch.nonzero(selection.filters[layer]).flatten().tolist():
            for outside in torch.nonzero(~selection.filters[layer]).flatten().tolist():
                moved = selection.filters.clone()
                moved[layer, inside], moved[layer, outside] = False, True
                assert selection_objective(forget, retain, moved, 1.0) <= current + 1e-12


def test_forget_only_ignores_the_retain_side():
    forget_h, forget_f = _grads(20, 2, 4, 11), _grads(20, 2, 10, 12)
    a, _ = warm_start_greedy(
        forget_h, forget_f, None, None, SearchSettings(0.5, objective="forget_only")
    )
    b, _ = warm_start_greedy(
        forget_h, forget_f, -forget_h, forget_f * 7, SearchSettings(0.5, objective="forget_only")
    )
    assert torch.equal(a.heads, b.heads) and torch.equal(a.filters, b.filters)


def test_per_layer_quota_gives_every_layer_its_share_and_global_does_not():
    # forget gradients concentrated in the last layer: a global budget goes there
    forget_f, retain_f = _grads(30, 4, 40, 13), _grads(30, 4, 40, 14)
    forget_f[:, -1] *= 10
    forget_h, retain_h = _grads(30, 4, 4, 15), _grads(30, 4, 4, 16)
    spread, trace = warm_start_greedy(
        forget_h, forget_f, retain_h, retain_f, SearchSettings(0.75, quota="per_layer")
    )
    assert spread.filters.sum(1).tolist() == [10, 10, 10, 10]
    assert spread.heads.sum(1).tolist() == [1, 1, 1, 1]
    values = [entry["objective_filters"] for entry in trace]
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:], strict=False))
    global_, _ = warm_start_greedy(forget_h, forget_f, retain_h, retain_f, SearchSettings(0.75))
    assert int(global_.filters.sum()) == 40 and global_.filters[-1].sum() > 10


@pytest.mark.parametrize(
    ("layers", "heads", "filters", "sparsity"),
    [(4, 4, 48, 0.9), (4, 4, 48, 0.5), (3, 6, 50, 0.8), (5, 7, 13, 0.3), (2, 4, 40, 0.99)],
)
def test_per_layer_quota_splits_the_global_budget_exactly(layers, heads, filters, sparsity):
    """The same total as the global quota (4 x 4 heads at 0.9: 2 heads, not 1 per layer), in
    layer counts that differ by at most one."""
    forget_h, retain_h = _grads(20, layers, heads, 31), _grads(20, layers, heads, 32)
    forget_f, retain_f = _grads(20, layers, filters, 33), _grads(20, layers, filters, 34)
    spread, _ = warm_start_greedy(
        forget_h, forget_f, retain_h, retain_f, SearchSettings(sparsity, quota="per_layer")
    )
    for chosen in (spread.heads, spread.filters):
        assert int(chosen.sum()) == budget(chosen.numel(), sparsity)
        counts = chosen.sum(1)
        assert int(counts.max() - counts.min()) <= 1


def test_per_layer_quota_gives_the_remainder_to_the_layers_whose_next_module_scores_best():
    forget_h, forget_f = _grads(20, 4, 4, 35), _grads(20, 4, 10, 36)
    forget_h[:, 1] *= 5  # layers 1 and 3 hold the best heads beyond each layer's floor share
    forget_h[:, 3] *= 3
    spread, _ = warm_start_greedy(
        forget_h,
        forget_f,
        None,
        None,
        SearchSettings(0.9, objective="forget_only", quota="per_layer"),
    )
    assert spread.heads.sum(1).tolist() == [0, 1, 0, 1]  # budget 2 over 4 layers: floor 0


def test_per_layer_quota_keeps_a_budget_in_parameters_to_the_global_capacity():
    """Each layer's share of the parameters is cut from the global budget, not rounded up."""
    forget_h, retain_h = _grads(20, 3, 4, 37), _grads(20, 3, 4, 38)
    forget_f, retain_f = _grads(20, 3, 61, 39), _grads(20, 3, 61, 40)
    spread, _ = warm_start_greedy(
        forget_h,
        forget_f,
        retain_h,
        retain_f,
        SearchSettings(0.9, quota="per_layer", budget_in="parameters"),
        module_sizes=(40, 1),
    )
    capacity = budget(3 * (4 * 40 + 61), 0.9)  # 67, where a ceil per layer gives 3 x 23
    used = spread.heads.sum(1) * 40 + spread.filters.sum(1)
    assert int(used.sum()) == capacity  # filters of one weight fill each layer's share
    assert int(used.max() - used.min()) <= 1


@pytest.mark.parametrize(("modules", "heads", "filters"), [("heads", 4, 0), ("filters", 0, 40)])
def test_a_module_type_left_out_stays_frozen(modules, heads, filters):
    forget_f, retain_f = _grads(30, 4, 40, 17), _grads(30, 4, 40, 18)
    forget_h, retain_h = _grads(30, 4, 4, 19), _grads(30, 4, 4, 20)
    both, _ = warm_start_greedy(forget_h, forget_f, retain_h, retain_f, SearchSettings(0.75))
    one, trace = warm_start_greedy(
        forget_h, forget_f, retain_h, retain_f, SearchSettings(0.75, modules=modules)
    )
    assert int(one.heads.sum()) == heads and int(one.filters.sum()) == filters
    kept = "heads" if modules == "heads" else "filters"
    assert torch.equal(getattr(one, kept), getattr(both, kept))  # the other type's search as is
    left_out = "filters" if modules == "heads" else "heads"
    assert trace[-1][f"objective_{left_out}"] == 0.0


@pytest.mark.parametrize(
    ("option", "value"), [("quota", "layers"), ("modules", "ffn"), ("budget_in", "bytes")]
)
def test_unknown_quota_or_module_type_is_rejected(option, value):
    with pytest.raises(
        ValidationError, match=f"{option}\n  Input should be .*input_value='{value}'"
    ):
        SearchSettings(0.5, **{option: value})


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5])
def test_sparsity_outside_range_is_rejected(sparsity):
    with pytest.raises(ValidationError, match=r"sparsity=.* expected 0 <= sparsity < 1"):
        SearchSettings(sparsity)


def test_unknown_objective_is_rejected():
    with pytest.raises(ValidationError, match="objective\n  Input should be 'forget_only'"):
        SearchSettings(0.5, objective="best")


def _ratio(forget, retain, selection) -> float:
    """F(S) / R(S) over both module types, each side normalised by its own trace per type."""
    parts = [
        sum(selection_objective(g, None, getattr(selection, kind), 0.0) for g, kind in pairs)
        for pairs in (
            ((forget[0], "heads"), (forget[1], "filters")),
            ((retain[0], "heads"), (retain[1], "filters")),
        )
    ]
    return parts[0] / parts[1]


@pytest.mark.parametrize("seed", range(4))
def test_ratio_objective_ends_where_no_swap_raises_the_ratio(seed):
    """Dinkelbach's iteration stops at a selection that no single within-layer swap improves,
    and never below the ratio of its start, the forget_retain search at ``lam``."""
    forget = (_grads(20, 2, 3, 10 * seed), _grads(20, 2, 8, 10 * seed + 1))
    retain = (_grads(25, 2, 3, 10 * seed + 2), _grads(25, 2, 8, 10 * seed + 3))
    start, _ = warm_start_greedy(*forget, *retain, SearchSettings(0.6, lam=1.0))
    found, _ = warm_start_greedy(*forget, *retain, SearchSettings(0.6, objective="ratio", lam=1.0))
    ratio = _ratio(forget, retain, found)
    assert ratio >= _ratio(forget, retain, start) * (1 - 1e-12)
    for kind in ("heads", "filters"):
        chosen = getattr(found, kind)
        for layer in range(2):
            for inside in torch.nonzero(chosen[layer]).flatten().tolist():
                for outside in torch.nonzero(~chosen[layer]).flatten().tolist():
                    moved = chosen.clone()
                    moved[layer, inside], moved[layer, outside] = False, True
                    swapped = search.ModuleSelection(**{**found.as_dict(), kind: moved})
                    assert _ratio(forget, retain, swapped) <= ratio * (1 + 1e-9)


def test_ratio_objective_needs_the_retain_side():
    g = torch.zeros(2, 1, 2)
    with pytest.raises(ValueError, match="objective='ratio' needs retain-set"):
        warm_start_greedy(g, g, None, None, SearchSettings(0.5, objective="ratio"))


def test_one_budget_in_parameters_is_filled_by_score_per_weight():
    """A head weighs 40 filters: with equal gradients per weight the budget still fills up,
    and the type whose gradients are larger per weight takes more than its per-type share."""
    forget_h, retain_h = _grads(30, 3, 4, 21) * 30, _grads(30, 3, 4, 22)
    forget_f, retain_f = _grads(30, 3, 60, 23), _grads(30, 3, 60, 24)
    sizes = (40, 1)
    per_type, _ = warm_start_greedy(forget_h, forget_f, retain_h, retain_f, SearchSettings(0.75))
    pooled, trace = warm_start_greedy(
        forget_h,
        forget_f,
        retain_h,
        retain_f,
        SearchSettings(0.75, budget_in="parameters"),
        module_sizes=sizes,
    )
    capacity = math.ceil(0.25 * (12 * 40 + 180))
    used = int(pooled.heads.sum()) * 40 + int(pooled.filters.sum())
    assert capacity - 1 < used <= capacity  # filters of one weight fill what heads leave
    assert int(pooled.heads.sum()) > int(per_type.heads.sum())  # strong heads win weights
    values = [entry["objective_filters"] for entry in trace]
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:], strict=False))


def test_a_budget_in_parameters_of_one_module_type_is_its_module_budget():
    forget_f, retain_f = _grads(30, 4, 40, 25), _grads(30, 4, 40, 26)
    forget_h, retain_h = _grads(30, 4, 4, 27), _grads(30, 4, 4, 28)
    grads = (forget_h, forget_f, retain_h, retain_f)
    for modules in ("heads", "filters"):
        counted, _ = warm_start_greedy(*grads, SearchSettings(0.75, modules=modules))
        weighed, _ = warm_start_greedy(
            *grads,
            SearchSettings(0.75, modules=modules, budget_in="parameters"),
            module_sizes=(16, 2),
        )
        assert torch.equal(counted.heads, weighed.heads)
        assert torch.equal(counted.filters, weighed.filters)


def _one_by_one(forget, retain, selected, lam=1.0, max_sweeps=10):
    """Reference scan on the dense within-layer M: candidates in descending score, each swapped
    for its best member when that raises J (docs/method.md §3.2), members kept in slots."""
    a = forget.double() / forget.double().pow(2).sum().sqrt()
    r = retain.double() / retain.double().pow(2).sum().sqrt()
    chosen, sweeps = selected.clone(), []
    for layer in range(a.shape[1]):
        m = a[:, layer].T @ a[:, layer] - lam * r[:, layer].T @ r[:, layer]
        slots = torch.nonzero(chosen[layer]).flatten().tolist()
        for sweep in range(max_sweeps):
            swaps = 0
            order = torch.argsort(m.diagonal(), descending=True).tolist()
            for c in [i for i in order if i not in slots]:
                value = float(m[slots][:, slots].sum())
                moved = [
                    float(m[s2][:, s2].sum())
                    for s2 in ([c if j == s else j for j in slots] for s in slots)
                ]
                best = max(range(len(slots)), key=moved.__getitem__)
                if moved[best] > value + 1e-12 * max(1.0, abs(value)):
                    slots[best], swaps = c, swaps + 1
            if len(sweeps) <= sweep:
                sweeps.append(0)
            sweeps[sweep] += swaps
            if swaps == 0:
                break
        chosen[layer] = False
        chosen[layer, slots] = True
    return chosen, sweeps


@pytest.fixture(scope="module")
def scanned() -> tuple:
    """Gradients, warm start and the reference scan's selection and swaps per sweep."""
    forget_f, retain_f = _grads(30, 3, 40, 13), _grads(40, 3, 40, 14)
    forget_h, retain_h = _grads(30, 3, 4, 15), _grads(40, 3, 4, 16)
    warm, _ = warm_start_greedy(
        forget_h, forget_f, retain_h, retain_f, SearchSettings(0.5, max_sweeps=0)
    )
    expected, swaps = _one_by_one(forget_f, retain_f, warm.filters)
    assert swaps == [41, 4, 0]  # two sweeps with swaps, then one without
    return (forget_h, forget_f, retain_h, retain_f), expected, swaps


@pytest.mark.parametrize(("block", "flush"), [(256, 64), (5, 3), (1, 1), (7, 100)])
def test_blocked_sweeps_make_the_same_swaps_as_a_one_by_one_scan(
    monkeypatch, scanned, block, flush
):
    """Blocks, lazily filled Fisher entries and pending columns change the cost, not the result."""
    monkeypatch.setattr(search, "BLOCK", block)
    monkeypatch.setattr(search, "FLUSH", flush)
    grads, expected, swaps = scanned
    selection, trace = warm_start_greedy(*grads, SearchSettings(0.5))
    assert torch.equal(selection.filters, expected)
    padded = swaps + [0] * (len(trace) - 1 - len(swaps))  # the heads may take more sweeps
    assert [entry["swaps_filters"] for entry in trace[1:]] == padded
