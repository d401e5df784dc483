"""``per_example=``: which extra arguments hold one row per example (sliced with the chunks and
repeated for every copy) and which are shared, whatever their shape (CLIP's class prompts)."""

from __future__ import annotations

import pytest
import torch

from multiequi import Equitune, MultiEquitune
from multiequi.groups import Flip, Product, Rot90

pytestmark = pytest.mark.usefixtures("one_thread")


class ZeroShot(torch.nn.Module):
    """CLIP-like: image embeddings against C shared class embeddings -> (rows, C) logits, with an
    optional per-example scale."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.image = torch.nn.Linear(2 * 5 * 5, 6).double()

    def forward(self, pixels: torch.Tensor, classes: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.image(pixels.flatten(1)) @ classes.T
        return logits if scale is None else logits * scale[:, None]


def _loop_equitune(model, group, x, classes, scale=None):
    """The formula written out: the mean over every element, one example at a time."""
    out = []
    for i in range(x.shape[0]):
        ys = []
        for g in range(len(group)):
            gx = group.transform(x[i : i + 1], torch.tensor([g]))
            ys.append(model(gx, classes, None if scale is None else scale[i : i + 1])[0])
        out.append(torch.stack(ys).mean(0))
    return torch.stack(out)


def test_shared_class_embeddings_are_not_repeated_even_when_their_count_equals_the_batch() -> None:
    model = ZeroShot()
    d4 = Product(Rot90(), Flip())
    x = torch.randn(4, 2, 5, 5, dtype=torch.float64)
    classes = torch.randn(4, 6, dtype=torch.float64)  # C == B: the size heuristic would repeat it
    wrapped = Equitune(model, d4, per_example=())
    y = wrapped(x, classes=classes)
    torch.testing.assert_close(y, _loop_equitune(model, d4, x, classes), rtol=0, atol=1e-12)
    for g in range(len(d4)):  # invariant to every element of D4
        gx = d4.transform(x, torch.full((4,), g))
        torch.testing.assert_close(wrapped(gx, classes=classes), y, rtol=0, atol=1e-12)
    # the default (every tensor with the batch's size first is per example) repeats the classes:
    # the logits then score every copy's classes, not the C shared ones
    assert Equitune(model, d4)(x, classes=classes).shape != y.shape


@pytest.mark.parametrize("chunk_size", [None, 8, 16])
def test_named_per_example_arguments_follow_their_rows_through_the_chunks(chunk_size) -> None:
    model = ZeroShot()
    x = torch.randn(5, 2, 5, 5, dtype=torch.float64)
    classes = torch.randn(5, 6, dtype=torch.float64)
    scale = torch.rand(5, dtype=torch.float64) + 0.5
    d4 = Product(Rot90(), Flip())
    # by keyword
    wrapped = Equitune(model, d4, per_example=("scale",), chunk_size=chunk_size)
    expected = _loop_equitune(model, d4, x, classes, scale)
    torch.testing.assert_close(wrapped(x, classes=classes, scale=scale), expected, rtol=0, atol=1e-12)
    # by position (the classes are position 0 after the images, the scale position 1)
    wrapped = Equitune(model, d4, per_example=(1,), chunk_size=chunk_size)
    torch.testing.assert_close(wrapped(x, classes, scale), expected, rtol=0, atol=1e-12)
    # multi-equitune: 4 + 2 copies, invariant to all 8 elements
    multi = MultiEquitune(model, [Rot90(), Flip()], per_example=("scale",), chunk_size=chunk_size)
    y = multi(x, classes=classes, scale=scale)
    assert y.shape == (5, 5)
    for g in range(len(d4)):
        gx = d4.transform(x, torch.full((5,), g))
        torch.testing.assert_close(multi(gx, classes=classes, scale=scale), y, rtol=0, atol=1e-12)


def test_a_per_example_argument_of_the_wrong_size_and_bad_options_are_refused() -> None:
    model = ZeroShot()
    x = torch.randn(3, 2, 5, 5, dtype=torch.float64)
    classes = torch.randn(4, 6, dtype=torch.float64)
    wrapped = Equitune(model, Rot90(), per_example=("scale",))
    with pytest.raises(ValueError, match=r"per_example argument 'scale' must be a tensor with the batch's 3 rows"):
        wrapped(x, classes=classes, scale=torch.ones(4, dtype=torch.float64))
    with pytest.raises(TypeError, match="list of argument names"):
        Equitune(model, Rot90(), per_example="scale")
    with pytest.raises(TypeError, match="names or positions"):
        Equitune(model, Rot90(), per_example=[-1])
    with pytest.raises(ValueError, match="input_key"):
        Equitune(model, Rot90(), input_key="pixels", per_example=["pixels"])
