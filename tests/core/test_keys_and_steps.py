"""Wrappers called by keyword (``input_key``) with a named output field (``output_key``), as
Hugging Face models are; and the step-at-a-time API (``copies``, ``combine``, ``extend``) that
decoding with a cache uses."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from conftest import SmallCNN, TokenNet
from multiequi import Equitune, MultiEquitune, MultiEquizero
from multiequi.groups import Flip, Product, Rot90, TokenCycles
from multiequi.testing import CopyCounter, equivariance_error

pytestmark = pytest.mark.usefixtures("one_thread")
V = 30


@dataclass
class Output:
    """A Hugging Face-like output object with several fields."""

    hidden: Tensor
    scores: Tensor


class KeywordImages(nn.Module):
    """Takes its images only by keyword and returns an object with two tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.net = SmallCNN(size=6).double().eval()

    def forward(self, *, pixel_values: Tensor, scale: Tensor | None = None) -> Output:
        y = self.net(pixel_values)
        if scale is not None:
            y = y * scale[:, None]
        return Output(hidden=pixel_values.flatten(1)[:, :3], scores=y)


def test_the_group_acts_on_a_keyword_argument_and_a_named_field_is_read() -> None:
    model = KeywordImages()
    x = torch.randn(3, 3, 6, 6, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    for wrapper in (Equitune, MultiEquitune):
        groups = Product(Rot90(), Flip()) if wrapper is Equitune else [Rot90(), Flip()]
        f = wrapper(model, groups, input_key="pixel_values", output_key="scores", chunk_size=None)  # type: ignore[arg-type]
        y = f(pixel_values=x, scale=scale)  # the per-example scale is repeated for every copy
        plain = wrapper(model.net, groups, chunk_size=None)(x) * scale[:, None]  # type: ignore[arg-type]
        torch.testing.assert_close(y, plain, rtol=0, atol=1e-12)
        err = equivariance_error(
            lambda z, f=f: f(pixel_values=z, scale=scale), Product(Rot90(), Flip()), x, "invariant"
        )
        assert err < 1e-12
        with CopyCounter(model.net) as counter:
            f(pixel_values=x, scale=scale)
        assert counter.rows == f.copies_per_example * 3 and counter.calls == 1


def test_keys_give_clear_errors() -> None:
    model = KeywordImages()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    f = Equitune(model, Rot90(), input_key="pixel_values", output_key="logits")
    with pytest.raises(TypeError, match=r"pass the batch as pixel_values=\.\.\."):
        f(x)
    with pytest.raises(TypeError, match=r"no tensor 'logits'; its fields are \['hidden', 'scores'\]"):
        f(pixel_values=x)
    with pytest.raises(TypeError, match="input_key must be a keyword name"):
        Equitune(model, Rot90(), input_key="")


def _token_setup() -> tuple[TokenNet, list[TokenCycles]]:
    torch.manual_seed(0)
    model = TokenNet(V).double().eval()
    factors = [TokenCycles([[1, 2]], V), TokenCycles([[3, 4, 5]], V)]
    return model, factors


@pytest.mark.parametrize("kind", ["equitune", "multi", "multi-equizero"])
def test_copies_then_combine_is_the_forward_call(kind: str) -> None:
    model, factors = _token_setup()
    f = {
        "equitune": lambda: Equitune(model, Product(*factors), output="vocab", chunk_size=None),
        "multi": lambda: MultiEquitune(model, factors, output="vocab", chunk_size=None),
        "multi-equizero": lambda: MultiEquizero(model, factors, output="vocab", chunk_size=None),
    }[kind]()
    ids = torch.tensor([[1, 3, 7, 4], [9, 9, 2, 5], [8, 7, 6, 10]])
    copies = f.copies(ids)
    k = copies.rows.shape[0]
    assert k == f.copies_per_example and copies.sizes == [len(br.group) for br in f.branches]
    raw = model(copies.rows.reshape(k * 3, -1)).reshape(k, 3, *ids.shape[1:], V)
    with torch.no_grad():
        assert torch.equal(f.combine(raw, copies), f(ids))
    with pytest.raises(ValueError, match="the model's outputs on the copies"):
        f.combine(raw[:2], copies)


@pytest.mark.parametrize("kind", ["equitune", "multi"])
def test_extend_continues_every_copy_in_its_own_frame(kind: str) -> None:
    """Copies of ``x`` followed by ``t`` are the copies of ``x`` each followed by the token
    ``extend`` gives it: a decoder's cache of the copies stays valid as the sequence grows."""
    model, factors = _token_setup()
    f = (
        Equitune(model, Product(*factors), output="vocab", chunk_size=None)
        if kind == "equitune"
        else MultiEquitune(model, factors, output="vocab", chunk_size=None)
    )
    ids = torch.tensor([[1, 3, 7], [2, 5, 9], [6, 6, 6]])
    copies = f.copies(ids)
    for tokens in (torch.tensor([4, 1, 11]), torch.tensor([[2, 5], [3, 3], [7, 1]])):
        new = f.extend(copies, tokens)
        t = tokens if tokens.dim() == 2 else tokens[:, None]
        grown = f.copies(torch.cat([ids, t], dim=1))
        extended = torch.cat([copies.rows, new if new.dim() == 3 else new[..., None]], dim=2)
        # the same copies, each row continuing its own prefix (rows with equal prefixes may swap)
        for b in range(3):
            assert sorted(map(tuple, grown.rows[:, b].tolist())) == sorted(map(tuple, extended[:, b].tolist()))
            for k in range(extended.shape[0]):
                assert torch.equal(extended[k, b, : ids.shape[1]], copies.rows[k, b])
    with pytest.raises(ValueError, match="one row per example"):
        f.extend(copies, torch.tensor([1, 2]))
