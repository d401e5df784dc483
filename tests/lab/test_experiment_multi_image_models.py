"""The six multi-image models: every symmetry each one declares holds exactly (float64), every
symmetry it does not declare fails, copies grow as Σ|G_i| (not Π|G_i|), and the Siamese branch
has three separately weighted convolutions."""

from __future__ import annotations

import itertools

import pytest
import torch

from multiequi.groups import TrivialGroup
from multiequi.lab.experiments.multi_image.data import view_groups
from multiequi.lab.experiments.multi_image.models import COLUMNS, SiameseCNN, TupleClassifier, build_model
from multiequi.multi_input import joint_group, transform_inputs
from multiequi.testing import CopyCounter, equivariance_error

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


SETTINGS = ["rot", "mixed"]  # rot: C4 on both views; mixed: C4 on view 1, C2 (flip) on view 2


def _model(label: str, aug: str, k: int = 2, size: int = 16) -> TupleClassifier:
    torch.manual_seed(1)
    model = build_model(label, k, view_groups(aug, k), num_classes=5, size=size, width=4, features=6).double()
    # non-trivial BatchNorm statistics, then eval mode (dropout off): the symmetries are exact
    model.train()
    with torch.no_grad():
        model(torch.rand(8, k, 1, size, size, dtype=torch.float64))
    return model.eval()


def _combinations(groups: list) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(len(g)) for g in groups)))


def _max_change(model: TupleClassifier, x: torch.Tensor, groups: list, combos: list[tuple[int, ...]]) -> float:
    """Largest output change over the given per-view element combinations (the same for every example)."""
    with torch.no_grad():
        y = model(x)
        worst = 0.0
        for e in combos:
            moved = transform_inputs(x, groups, torch.tensor([e] * x.shape[0]))
            worst = max(worst, float((model(moved) - y).abs().max()))
    return worst


@pytest.mark.parametrize("aug", SETTINGS)
@pytest.mark.parametrize("label", ["Multi-GCNN", "Multi-GCNN-Fusion"])
def test_each_model_is_exactly_invariant_to_every_combination_of_its_view_groups(label: str, aug: str) -> None:
    """The models that declare per-view groups: exact invariance to every combination of elements
    (16 for C4 x C4, 8 for C4 x C2), by explicit loops and by the core's checker."""
    model = _model(label, aug)
    x = torch.rand(3, 2, 1, 16, 16, dtype=torch.float64)
    groups = model.view_groups
    assert [len(g) for g in groups] == ([4, 4] if aug == "rot" else [4, 2])
    assert len(_combinations(groups)) == (16 if aug == "rot" else 8)
    assert _max_change(model, x, groups, _combinations(groups)) < 1e-12
    # the core's checker, one group per input
    errors = equivariance_error(model.multi_input, groups, list(x.unbind(1)), "invariant")
    assert max(errors) < 1e-12


@pytest.mark.parametrize("label", ["CNN", "CNN-Fusion", "DSS", "DeepSets"])
def test_the_other_models_declare_no_per_view_group(label: str) -> None:
    """Their per-view claims are empty (the next test shows they do fail under per-view transforms)."""
    assert all(g == TrivialGroup() for g in _model(label, "rot").view_groups)


@pytest.mark.parametrize("aug", SETTINGS)
@pytest.mark.parametrize("label", COLUMNS)
def test_symmetries_a_model_does_not_declare_fail(label: str, aug: str) -> None:
    """The claims table in the docs is tight: no model is invariant to more than it declares."""
    model = _model(label, aug)
    x = torch.rand(3, 2, 1, 16, 16, dtype=torch.float64)
    groups = view_groups(aug, 2)
    combos = _combinations(groups)
    independent = _max_change(model, x, groups, combos)
    if label.startswith("Multi-GCNN"):
        assert independent < 1e-12
    else:  # CNN, DeepSets: no rotation symmetry; DSS: not to one view transformed alone
        assert independent > 1e-6
        one_view = [e for e in combos if e[1] == 0]  # transform view 1 only
        assert _max_change(model, x, groups, one_view) > 1e-6


@pytest.mark.parametrize("aug", SETTINGS)
def test_dss_is_invariant_to_its_shared_group_acting_on_all_views_at_once(aug: str) -> None:
    model = _model("DSS", aug)
    g = model.joint_group
    assert g == joint_group(view_groups(aug, 2)) and len(g) == (4 if aug == "rot" else 8)
    x = torch.rand(3, 2, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        y = model(x)
        for e in range(len(g)):
            moved = g.transform(x, torch.full((3,), e))  # the same element on every view (dims -2, -1)
            assert float((model(moved) - y).abs().max()) < 1e-12


@pytest.mark.parametrize("label", COLUMNS)
def test_which_models_depend_on_view_order(label: str) -> None:
    model = _model(label, "rot", k=3)
    x = torch.rand(3, 3, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        change = max(float((model(x[:, list(p)]) - model(x)).abs().max()) for p in itertools.permutations(range(3)))
    if model.order_invariant:
        assert label in ("DSS", "DeepSets") and change < 1e-12
    else:  # the concatenating head reads view 1's features first
        assert label in ("CNN", "CNN-Fusion", "Multi-GCNN", "Multi-GCNN-Fusion") and change > 1e-6


@pytest.mark.parametrize(("aug", "k"), [("rot", 2), ("rot", 3), ("rot", 4), ("mixed", 2), ("mixed", 3)])
def test_copies_grow_as_the_sum_of_group_orders_not_the_product(aug: str, k: int) -> None:
    groups = view_groups(aug, k)
    total, product = sum(len(g) for g in groups), 1
    for g in groups:
        product *= len(g)
    x = torch.rand(2, k, 1, 16, 16)
    for label in COLUMNS:
        model = build_model(label, k, groups, 5, size=16, width=4, features=6).eval()
        counters = [CopyCounter(b) for b in model.branches]
        for c in counters:
            c.__enter__()
        with torch.no_grad():
            model(x)
        for c in counters:
            c.__exit__()
        rows = [c.rows // 2 for c in counters]
        assert sum(rows) == model.copies_per_example
        if label == "Multi-GCNN":
            assert rows == [total] and counters[0].calls == len(set(groups))  # one batched call per group
        elif label == "Multi-GCNN-Fusion":
            assert rows == [total, total]  # equitune terms + the shared IS branch
        elif label == "CNN":
            assert rows == [k]
        elif label == "CNN-Fusion":
            assert rows == [k, k]
        elif label == "DSS":
            assert rows == [len(joint_group(groups)) * k, len(joint_group(groups))]
        else:
            assert rows == [k, 1]
    if aug == "rot" and k == 4:
        assert (total, product) == (16, 256)  # the paper's complexity table: 16 (+16 for IS) instead of 256


def test_siamese_branch_has_three_separately_weighted_convolutions() -> None:
    net = SiameseCNN(channels=3, size=64)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 and len({id(c.weight) for c in convs}) == 3  # the published code shared conv 2 and 3
    assert [tuple(c.weight.shape) for c in convs] == [(16, 3, 5, 5), (16, 16, 5, 5), (16, 16, 5, 5)]
    assert not torch.equal(convs[1].weight, convs[2].weight)
    assert net.fc[1].in_features == 16 * 8 * 8 and net(torch.zeros(2, 3, 64, 64)).shape == (2, 64)
    assert SiameseCNN(size=32).fc[1].in_features == 256  # 32 px (padded Fashion-MNIST): 16 x 4 x 4, as the paper
    with pytest.raises(ValueError, match="at least 8"):
        SiameseCNN(size=4)


def test_models_check_their_inputs() -> None:
    model = build_model("CNN", 2, view_groups("rot", 2), 5, size=16, width=4, features=6)
    with pytest.raises(ValueError, match=r"K=2"):
        model(torch.zeros(2, 3, 1, 16, 16))
    with pytest.raises(ValueError, match="one group per view"):
        build_model("CNN", 3, view_groups("rot", 2), 5)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("ResNet", 2, view_groups("rot", 2), 5)


def test_every_branch_is_trained() -> None:
    for label in COLUMNS:
        model = build_model(label, 2, view_groups("rot", 2), 5, size=16, width=4, features=6)
        model(torch.rand(4, 2, 1, 16, 16)).logsumexp(1).sum().backward()
        for b in model.branches:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in b.parameters()), label


def test_a_branch_shared_by_two_groups_round_trips_through_checkpoints(tmp_path) -> None:
    """Mixed views (C4, C2) put one branch inside two wrappers: its tensors have two names. The shared
    ``load_weights`` must load them (safetensors calls BatchNorm's second counter "unexpected") and
    still refuse weights the model really lacks."""
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file, save_file

    from multiequi.lab.training import load_weights, save_weights

    model = _model("Multi-GCNN-Fusion", "mixed")
    path = save_weights(model, tmp_path / "w.safetensors")
    fresh = build_model("Multi-GCNN-Fusion", 2, view_groups("mixed", 2), 5, size=16, width=4, features=6).double()
    load_weights(fresh, path).eval()
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    state = load_file(str(path))
    save_file({**state, "stray.weight": torch.zeros(2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(RuntimeError, match=r"stray\.weight"):
        load_weights(fresh, tmp_path / "bad.safetensors")
