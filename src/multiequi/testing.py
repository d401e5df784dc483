"""Equivariance checks users can call on their own models.

- :func:`equivariance_error`: the largest deviation from equivariance (or invariance) over every
  element of a group, or a seeded sample of a large one; per input for multi-input models.
- :func:`assert_equivariant`: the same, with a tolerance chosen from the dtype.
- :class:`CopyCounter`: counts how many rows (transformed copies) reach a wrapped model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .groups import Action, Group, resolve_action
from .symmetrize import is_tuning, model_output_tensor

__all__ = ["CopyCounter", "assert_equivariant", "count_copies", "default_tolerance", "equivariance_error"]

_TOL = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}


def default_tolerance(dtype: torch.dtype) -> float:
    """Tolerance used by :func:`assert_equivariant` for outputs of ``dtype``
    (1e-9 in float64, 1e-4 in float32, 1e-2 in float16, 3e-2 in bfloat16)."""
    return _TOL.get(dtype, 1e-4)


def _pick_elements(group: Group, elements: int | Sequence[int] | None, seed: int) -> list[int]:
    if elements is None:
        return list(range(len(group)))
    if isinstance(elements, int):
        if elements >= len(group):
            return list(range(len(group)))
        gen = torch.Generator().manual_seed(seed)
        rest = torch.randperm(len(group) - 1, generator=gen)[: max(elements - 1, 0)] + 1
        return [0, *sorted(rest.tolist())]
    return [int(e) for e in elements]


def _as_tensors(out: Any) -> list[Tensor]:
    if isinstance(out, (list, tuple)):
        return [model_output_tensor(o) for o in out]
    return [model_output_tensor(out)]


def _err(a: Tensor, b: Tensor) -> float:
    if a.shape != b.shape:
        raise ValueError(f"output shape changed under the group action: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.numel() == 0:
        return 0.0
    diff = (a.detach() - b.detach()).abs().max()
    if not (torch.isfinite(diff) and torch.isfinite(b).all()):
        return math.inf  # NaN or inf outputs never pass
    scale = max(1.0, float(b.detach().abs().max()))
    return float(diff) / scale


def _act(action: Action, y: Tensor, g: int) -> Tensor:
    return action.act(y, g)


def equivariance_error(
    f: Callable[..., Any],
    group: Group | Sequence[Group],
    x: Tensor | Sequence[Tensor],
    output: str | Action | Sequence[str | Action] = "invariant",
    *,
    elements: int | Sequence[int] | None = None,
    args: tuple = (),
    kwargs: dict | None = None,
    seed: int = 0,
) -> float | list[float]:
    """Largest deviation of ``f`` from equivariance over the elements of ``group``.

    For every element ``g`` it compares ``f(g·x)`` with ``g·f(x)`` (``output`` says how outputs
    transform: ``"invariant"``, ``"same"``, ``"vocab"`` or an :class:`~multiequi.groups.Action`)
    and returns ``max_g max|f(g·x) − g·f(x)| / max(1, max|f(x)|)``.

    Parameters
    ----------
    f : callable
        The model; it is called as ``f(x, *args, **kwargs)`` (``f(x_1, …, x_N, *args)`` for
        several inputs). Hugging Face outputs are read through ``.logits``.
    group : Group or list of Group
        One group acting on ``x`` (batch dimension first), or one group per input when ``x`` is
        a list of inputs; each group then acts on its own input while the others stay fixed.
    x : Tensor or list of Tensor
        The input batch, or one batch per input.
    output : str, Action, or a list of them
        How the output transforms. For several inputs: one entry per input when ``f`` returns
        one output per input (output ``j`` transforms under ``G_j`` as given and is invariant
        to the other inputs' groups), or a single value, which is then applied to *every*
        output under every input's group (``"invariant"``: no output moves).
    elements : int, list of int, or None
        All elements (``None``, default), a seeded random sample of this many (the identity
        included), or an explicit list.

    Returns
    -------
    float, or a list of floats (one per input) for several inputs.

    Examples
    --------
    >>> import torch
    >>> from multiequi import Equitune
    >>> from multiequi.groups import Rot90
    >>> from multiequi.testing import equivariance_error
    >>> f = Equitune(torch.nn.Conv2d(1, 1, 3, padding=1).double(), Rot90(), output="same")
    >>> equivariance_error(f, Rot90(), torch.randn(2, 1, 5, 5, dtype=torch.float64), "same") < 1e-12
    True
    """
    kwargs = kwargs or {}
    if isinstance(group, Group):
        if not isinstance(x, Tensor):
            raise TypeError("with one group, x must be a Tensor (batch dimension first)")
        action = resolve_action(group, output)  # type: ignore[arg-type]
        with torch.no_grad():
            base = _as_tensors(f(x, *args, **kwargs))
            worst = 0.0
            for g in _pick_elements(group, elements, seed):
                moved = _as_tensors(f(group.act(x, g), *args, **kwargs))
                for y0, y1 in zip(base, moved, strict=True):
                    worst = max(worst, _err(y1, _act(action, y0, g)))
        return worst

    groups = list(group)
    xs = list(x) if not isinstance(x, Tensor) else None
    if xs is None or len(xs) != len(groups):
        raise ValueError(f"with {len(groups)} groups, x must be a list of {len(groups)} input tensors")
    per_output = isinstance(output, (list, tuple))
    if per_output and len(output) != len(groups):  # type: ignore[arg-type]
        raise ValueError(f"output must list one entry per input ({len(groups)}), got {len(output)}")  # type: ignore[arg-type]
    errors = []
    with torch.no_grad():
        base = _as_tensors(f(*xs, *args, **kwargs))
        for i, gi in enumerate(groups):
            worst = 0.0
            for g in _pick_elements(gi, elements, seed):
                moved_in = list(xs)
                moved_in[i] = gi.act(xs[i], g)
                moved = _as_tensors(f(*moved_in, *args, **kwargs))
                if per_output:
                    if len(moved) != len(groups):
                        raise ValueError(f"f returned {len(moved)} outputs; expected one per input ({len(groups)})")
                    act_i = resolve_action(gi, output[i])  # type: ignore[index]
                    expected = [_act(act_i, y0, g) if j == i else y0 for j, y0 in enumerate(base)]
                else:
                    act_i = resolve_action(gi, output)  # type: ignore[arg-type]
                    expected = [_act(act_i, y0, g) for y0 in base]
                for y1, y0 in zip(moved, expected, strict=True):
                    worst = max(worst, _err(y1, y0))
            errors.append(worst)
    return errors


def assert_equivariant(
    f: Callable[..., Any],
    group: Group | Sequence[Group],
    x: Tensor | Sequence[Tensor],
    output: str | Action | Sequence[str | Action] = "invariant",
    *,
    atol: float | None = None,
    elements: int | Sequence[int] | None = None,
    args: tuple = (),
    kwargs: dict | None = None,
    seed: int = 0,
) -> None:
    """Raise ``AssertionError`` if :func:`equivariance_error` exceeds ``atol``.

    ``atol`` defaults to :func:`default_tolerance` of the input's dtype (of the first input's
    dtype for integer inputs such as token ids, the output's dtype is used).

    Examples
    --------
    >>> import torch
    >>> from multiequi import MultiEquitune
    >>> from multiequi.groups import Rot90, Flip
    >>> from multiequi.testing import assert_equivariant
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 4)).double()
    >>> x = torch.randn(3, 1, 3, 3, dtype=torch.float64)
    >>> from multiequi.groups import Product
    >>> assert_equivariant(MultiEquitune(net, [Rot90(), Flip()]), Product(Rot90(), Flip()), x)
    """
    err = equivariance_error(f, group, x, output, elements=elements, args=args, kwargs=kwargs, seed=seed)
    if atol is None:
        first = x if isinstance(x, Tensor) else next(iter(x))
        dtype = first.dtype
        if not dtype.is_floating_point:
            with torch.no_grad():
                ins = (x,) if isinstance(x, Tensor) else tuple(x)
                dtype = _as_tensors(f(*ins, *args, **(kwargs or {})))[0].dtype
        atol = default_tolerance(dtype)
    worst = max(err) if isinstance(err, list) else err
    if not worst <= atol:
        raise AssertionError(f"equivariance error {err} exceeds tolerance {atol:g} for {group!r}")


class CopyCounter:
    """Count the calls and rows that reach ``module`` (a context manager).

    Rows are the batch size of the module's input, summed over calls: the first positional
    argument, or for keyword calls (Hugging Face models) the keyword ``key`` (default: the first
    of ``input_ids``, ``pixel_values``, ``inputs_embeds``, else the first tensor keyword).
    :attr:`shapes` lists each call's input shape. The calls made by the ``chunk_size="auto"``
    tuner are not counted.

    Examples
    --------
    >>> import torch
    >>> from multiequi import MultiEquitune
    >>> from multiequi.groups import TokenCycles
    >>> emb = torch.nn.Embedding(10, 4)
    >>> from multiequi.testing import CopyCounter
    >>> f = MultiEquitune(emb, [TokenCycles([[1, 2]], 10), TokenCycles([[3, 4, 5]], 10)])
    >>> with CopyCounter(emb) as c:
    ...     _ = f(torch.tensor([[1, 3, 7]]))
    >>> c.rows, c.calls, c.shapes
    (5, 1, [(5, 3)])
    """

    _KEYS = ("input_ids", "pixel_values", "inputs_embeds")

    def __init__(self, module: nn.Module, key: str | None = None) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"CopyCounter needs an nn.Module to hook, got {type(module).__name__}")
        self.module = module
        self.key = key
        self.calls = 0
        self.rows = 0
        self.shapes: list[tuple[int, ...]] = []
        self._handle: Any = None

    def _input(self, args: tuple, kwargs: dict) -> Any:
        if self.key is not None:
            return kwargs.get(self.key, args[0] if args else None)
        if args:
            return args[0]
        for name in self._KEYS:
            if isinstance(kwargs.get(name), Tensor):
                return kwargs[name]
        return next((v for v in kwargs.values() if isinstance(v, Tensor)), None)

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if is_tuning():
            return
        self.calls += 1
        x = self._input(args, kwargs)
        if isinstance(x, Tensor) and x.dim() > 0:
            self.rows += int(x.shape[0])
            self.shapes.append(tuple(x.shape))

    def __enter__(self) -> CopyCounter:
        self.calls = 0
        self.rows = 0
        self.shapes = []
        self._handle = self.module.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def count_copies(wrapper: Callable[..., Any], inner: nn.Module, x: Tensor, *args: Any, **kwargs: Any) -> float:
    """Copies of each input that reach ``inner`` when ``wrapper(x, *args, **kwargs)`` runs:
    rows seen by ``inner`` divided by the batch size of ``x``."""
    with CopyCounter(inner) as c:
        wrapper(x, *args, **kwargs)
    return c.rows / x.shape[0]
