"""Multi-input networks (Design 1): each input has its own group, cost ``Σ |G_i|`` copies."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeGuard

import torch
from torch import Tensor, nn

from ..groups import Action, Group, resolve_action
from ..symmetrize import ChunkSize, Equitune, Output, apply_symmetrizer
from ._is_layer import ISLayer

__all__ = ["MultiInputClassifier", "MultiInputNetwork"]

Model = nn.Module | Callable[..., Any]
Fuse = Literal["concat", "stack", "sum", "mean"]
#: Cross terms: none, a nested N x N list or a mapping {(i, j): model}; with shared_is, a model or one per input.
ISModels = (
    Model | Sequence[Model | None] | Sequence[Sequence[Model | None] | None] | Mapping[tuple[int, int], Model] | None
)


def _is_sequence(v: Any) -> TypeGuard[Sequence[Any]]:
    return isinstance(v, (list, tuple, nn.ModuleList))


def _per_input_models(models: Any, n: int, name: str) -> list[Model]:
    """One model per input: a single callable is shared by all inputs."""
    if _is_sequence(models):
        out = list(models)
        if len(out) != n:
            raise ValueError(f"{name} must be one model or a list of {n} models (one per input), got {len(out)}")
    else:
        out = [models] * n
    for i, m in enumerate(out):
        if not callable(m):
            raise TypeError(f"{name}[{i}] must be callable (an nn.Module or a function), got {type(m).__name__}")
    return out


def _per_input_outputs(outputs: Any, groups: list[Group]) -> list[Action]:
    n = len(groups)
    if isinstance(outputs, (list, tuple)):
        if len(outputs) != n:
            raise ValueError(f"output must be one entry or a list of {n} entries (one per input), got {len(outputs)}")
        return [resolve_action(g, o) for g, o in zip(groups, outputs, strict=True)]
    return [resolve_action(g, outputs) for g in groups]


def _key(v: Any) -> Any:
    return v if isinstance(v, str) else id(v)


class _SharedCalls(nn.Module):
    """Symmetrizers for N inputs, one per distinct ``(model, group, output)``.

    Inputs that share a symmetrizer and an input shape go through it in one batched call (their
    batches concatenated): N views through one Siamese backbone make one model call.

    Each distinct model is registered once (``models.<k>``); the symmetrizers are kept in a plain
    list, so a backbone shared by two groups (views with C4 and with C2) has one name in the
    state dict, not one per wrapper. Groups are matched by equality (``Rot90() == Rot90()``),
    models by identity.
    """

    def __init__(
        self, models: list[Model], groups: list[Group], outputs: list[Any], chunk_size: ChunkSize, sorted_sum: bool
    ) -> None:
        super().__init__()
        index: dict[tuple, int] = {}
        wrappers: list[Equitune] = []
        distinct: dict[int, nn.Module] = {}
        self.slot: list[int] = []
        for m, g, o in zip(models, groups, outputs, strict=True):
            key = (id(m), g, _key(o))
            if key not in index:
                index[key] = len(wrappers)
                wrappers.append(Equitune(m, g, output=o, chunk_size=chunk_size, sorted_sum=sorted_sum))
            if isinstance(m, nn.Module):
                distinct.setdefault(id(m), m)
            self.slot.append(index[key])
        self.models = nn.ModuleList(distinct.values())
        self.wrappers: list[Equitune] = wrappers  # not registered: their models are, above

    def extra_repr(self) -> str:
        return "wrappers=[" + ", ".join(w.extra_repr() for w in self.wrappers) + "]"

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        buckets: dict[tuple, list[int]] = {}
        for i, x in enumerate(xs):  # a loop over the N inputs, not over group elements
            buckets.setdefault((self.slot[i], tuple(x.shape[1:]), x.dtype, x.device), []).append(i)
        out: list[Tensor | None] = [None] * len(xs)
        for (k, *_), members in buckets.items():
            if len(members) == 1:
                out[members[0]] = self.wrappers[k](xs[members[0]])
                continue
            y = self.wrappers[k](torch.cat([xs[i] for i in members]))
            for i, part in zip(members, y.split([xs[i].shape[0] for i in members]), strict=True):
                out[i] = part
        return out  # type: ignore[return-value]


class MultiInputNetwork(nn.Module):
    """Design 1: ``y_j = E_{G_j}[M_j](x_j) + Σ_{i≠j} IS_ij(x_i)`` for inputs with their own groups.

    Inputs ``x_1, …, x_N`` each carry a group ``G_i`` acting on ``x_i`` only; the network is
    equivariant to the product ``G_1 × … × G_N`` acting componentwise: transforming ``x_i`` by
    ``g_i`` moves output ``y_i`` by ``g_i`` (``output[i]``) and leaves every other output
    unchanged. Equitune over the product would cost ``Π |G_i|`` copies per example; this costs
    ``Σ |G_i|`` for the equitune terms plus ``|G_i|`` per IS term fed by input ``i``
    (``Σ |G_i|`` in all with ``shared_is=True``).

    The diagonal terms are equitune (:class:`~multiequi.Equitune`, output ``output[j]``);
    the cross terms are invariant-symmetric layers ``IS_ij(x_i) = S_{G_j}[A_{G_i}[M_ij](x_i)]``
    (:class:`ISLayer`): invariant to ``G_i`` and fixed by ``G_j``, as the paper's linear
    characterization requires (an equivariant cross term, as in DSS, would be wrong here because
    the groups act independently).

    Parameters
    ----------
    models : nn.Module, callable, or list of them
        The models ``M_j`` of the equitune terms: one shared by every input (Siamese), or one
        per input. Model ``j`` maps ``x_j`` to ``y_j``.
    groups : list of Group
        ``G_1, …, G_N``; their number is the number of inputs. Inputs of equal shape with equal
        groups (``[Rot90()] * 4``, or ``Rot90()`` four times) that also share a model go through
        it in one batched call.
    is_models : None, nested list, mapping, or (with ``shared_is``) a model or list of models
        The cross terms. Without ``shared_is``: ``None`` (no cross terms), an ``N × N`` nested
        list whose entry ``[i][j]`` is ``M_ij`` (input ``i`` to output ``j``; ``None`` for no
        term, and ``None`` on the diagonal), or a mapping ``{(i, j): M_ij}``. ``M_ij`` maps
        ``x_i`` to the shape of ``y_j``. With ``shared_is=True``: one model (or one per input)
        computing features of ``x_i``, all of one common shape, that of every ``y_j``.
    shared_is : bool
        One IS branch per input: ``f_i = A_{G_i}[M_i](x_i)`` is computed once, the cross sum is
        ``Σ_{i≠j} f_i = Σ_i f_i − f_j`` ("sum over all minus self") and, ``S`` being linear,
        ``S_{G_j}`` is applied once after the sum: ``y_j = E_{G_j}[M_j](x_j) + S_{G_j}[Σ_{i≠j} f_i]``.
    output : {"same", "vocab", "invariant"}, Action, or a list with one per input
        How ``G_j`` acts on ``y_j``.
    chunk_size : int, "auto" or None
        Rows per model call, as in :class:`~multiequi.Equitune`.
    sorted_sum : bool
        Average copies in sorted order (bitwise-exact invariance, default ``True``).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from multiequi import MultiInputNetwork
    >>> from multiequi.groups import PermutationGroup, Rot90
    >>> C3 = PermutationGroup([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    >>> image_net = nn.Conv2d(1, 1, 3, padding=1)                          # x_1: 4x4 images, C4
    >>> vector_net = nn.Linear(3, 3)                                       # x_2: R^3, C3
    >>> from_vector = nn.Sequential(nn.Linear(3, 16), nn.Unflatten(1, (1, 4, 4)))   # IS_12
    >>> from_image = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))                 # IS_21
    >>> net = MultiInputNetwork([image_net, vector_net], [Rot90(), C3],
    ...                         is_models=[[None, from_image], [from_vector, None]]).double()
    >>> x1, x2 = torch.randn(2, 1, 4, 4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    >>> y1, y2 = net(x1, x2)
    >>> z1, z2 = net(torch.rot90(x1, 1, (-2, -1)), x2)                     # rotate the image only
    >>> torch.allclose(z1, torch.rot90(y1, 1, (-2, -1))), torch.allclose(z2, y2)
    (True, True)
    >>> net.copies_per_example                                              # (4 + 3) + (4 + 3)
    14
    """

    def __init__(
        self,
        models: Model | Sequence[Model],
        groups: Sequence[Group],
        *,
        is_models: ISModels = None,
        shared_is: bool = False,
        output: Output | Sequence[Output] = "same",
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(groups, Group) or not isinstance(groups, Sequence) or not groups:
            raise TypeError(f"groups must be a non-empty list of Group objects (one per input), got {groups!r}")
        for i, g in enumerate(groups):
            if not isinstance(g, Group):
                raise TypeError(f"groups[{i}] must be a Group object, got {type(g).__name__}")
        self.groups = list(groups)
        n = self.n_inputs = len(self.groups)
        self.actions = _per_input_outputs(output, self.groups)
        outputs = list(output) if isinstance(output, (list, tuple)) else [output] * n
        self.shared_is = bool(shared_is)
        self.sorted_sum = sorted_sum
        self.equitune = _SharedCalls(
            _per_input_models(models, n, "models"), self.groups, outputs, chunk_size, sorted_sum
        )
        self.pairs: list[tuple[int, int]] = []
        self.features: _SharedCalls | None = None
        self.is_layers = nn.ModuleDict()
        if self.shared_is:
            if is_models is None:
                raise ValueError(
                    "shared_is=True needs is_models: one model (or one per input) for the shared IS branch"
                )
            feats = _per_input_models(is_models, n, "is_models")
            self.features = _SharedCalls(feats, self.groups, ["invariant"] * n, chunk_size, sorted_sum)
        else:
            for (i, j), m in self._pairs(is_models).items():
                self.pairs.append((i, j))
                self.is_layers[f"{i}_{j}"] = ISLayer(
                    m,
                    self.groups[i],
                    self.groups[j],
                    output=self.actions[j],
                    chunk_size=chunk_size,
                    sorted_sum=sorted_sum,
                )

    def _pairs(self, is_models: ISModels) -> dict[tuple[int, int], Model]:
        n = self.n_inputs
        if is_models is None:
            return {}
        found: dict[tuple[int, int], Model] = {}
        if isinstance(is_models, Mapping):
            for key, m in is_models.items():
                if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, int) for k in key)):
                    raise TypeError(f"is_models keys must be (i, j) pairs of input indices, got {key!r}")
                found[key] = m
        elif _is_sequence(is_models) and len(is_models) == n and all(r is None or _is_sequence(r) for r in is_models):
            for i, row in enumerate(is_models):
                if row is None:
                    continue
                if len(row) != n:
                    raise ValueError(f"is_models must be an {n} x {n} nested list; row {i} has {len(row)} entries")
                for j, m in enumerate(row):
                    if m is not None:
                        found[(i, j)] = m
        else:
            raise TypeError(
                f"without shared_is, is_models must be None, an {n} x {n} nested list (entry [i][j] maps input i "
                "to output j, None on the diagonal) or a mapping {(i, j): model}; for one IS branch per input use "
                "shared_is=True"
            )
        pairs = {}
        for (i, j), m in sorted(found.items()):
            if not (0 <= i < n and 0 <= j < n):
                raise ValueError(f"is_models pair ({i}, {j}) is out of range for {n} inputs")
            if i == j:
                raise ValueError(
                    f"is_models[{i}][{i}] must be None: the diagonal term of input {i} is the equitune of models[{i}]"
                )
            if m is None:
                continue
            if not callable(m):
                raise TypeError(f"is_models[{i}][{j}] must be callable, got {type(m).__name__}")
            pairs[(i, j)] = m
        return pairs

    @property
    def copies_per_example(self) -> int:
        """Transformed copies per example (all inputs, all terms): ``Σ_j |G_j|`` for the equitune
        terms plus ``|G_i|`` per IS term fed by input ``i`` (``Σ_i |G_i|`` with ``shared_is``)."""
        total = sum(len(g) for g in self.groups)
        if self.shared_is:
            return 2 * total
        return total + sum(len(self.groups[i]) for i, _ in self.pairs)

    def _check_inputs(self, xs: tuple[Any, ...]) -> None:
        if len(xs) != self.n_inputs:
            raise ValueError(f"expected {self.n_inputs} inputs (one per group), got {len(xs)}")
        for i, x in enumerate(xs):
            if not isinstance(x, Tensor):
                raise TypeError(f"input {i} must be a Tensor with the batch dimension first, got {type(x).__name__}")
            if x.dim() == 0:
                raise ValueError(f"input {i} must have a batch dimension, got a scalar")
        sizes = [x.shape[0] for x in xs]
        if len(set(sizes)) > 1:
            raise ValueError(f"all inputs must have the same batch size; got batch sizes {sizes}")

    def forward(self, *xs: Tensor) -> tuple[Tensor, ...]:
        """Outputs ``(y_1, …, y_N)`` for inputs ``x_1, …, x_N`` (batch dimension first, equal batch sizes)."""
        self._check_inputs(xs)
        ys = list(self.equitune(xs))
        if self.features is not None:
            feats = self.features(xs)
            shapes = {tuple(f.shape) for f in feats}
            if len(shapes) > 1:
                raise ValueError(
                    "shared_is=True needs IS features of one common shape for every input; got "
                    + ", ".join(f"input {i}: {tuple(f.shape)}" for i, f in enumerate(feats))
                )
            total = torch.stack(feats).sum(0)
            for j in range(self.n_inputs):
                cross = apply_symmetrizer(total - feats[j], self.actions[j], self.sorted_sum)
                ys[j] = self._add(ys[j], cross, "the shared IS features", j)
        for i, j in self.pairs:
            ys[j] = self._add(ys[j], self.is_layers[f"{i}_{j}"](xs[i]), f"the IS term from input {i}", j)
        return tuple(ys)

    @staticmethod
    def _add(y: Tensor, term: Tensor, what: str, j: int) -> Tensor:
        if term.shape != y.shape:
            raise ValueError(
                f"{what} to output {j} has shape {tuple(term.shape)}, but output {j} (the equitune of "
                f"models[{j}]) has shape {tuple(y.shape)}: every term of y_{j} must have its shape"
            )
        return y + term

    def extra_repr(self) -> str:
        groups = ", ".join(repr(g) for g in self.groups)
        return f"groups=[{groups}], shared_is={self.shared_is}, copies_per_example={self.copies_per_example}"


class MultiInputClassifier(nn.Module):
    """Invariant classification of a tuple of inputs, each with its own group: cost ``Σ |G_i|``.

    Each input gets invariant features ``z_j = A_{G_j}[M_j](x_j)`` (optionally fused with the
    other inputs by IS terms, which for invariant outputs are ``A_{G_i}[M_ij](x_i)``); the
    features are fused (concatenated, stacked, summed or averaged) and passed to ``head``. The
    result is invariant to every ``G_i`` acting on its own input, hence to the whole product.
    It is a :class:`MultiInputNetwork` with ``output="invariant"`` followed by a head.

    Parameters
    ----------
    models : nn.Module, callable, or list of them
        Feature extractors, one shared by all inputs (Siamese) or one per input.
    groups : list of Group
        One group per input.
    head : nn.Module, callable or None
        Applied to the fused features (``None``: return the fused features).
    fuse : {"concat", "stack", "sum", "mean"}
        ``"concat"``: features concatenated along the last axis (depends on the order of the
        inputs); ``"stack"``: a new axis 1 of size N; ``"sum"``/``"mean"``: order-independent.
    is_models, shared_is, chunk_size, sorted_sum
        As in :class:`MultiInputNetwork` (fusion by IS terms; ``None``: none).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from multiequi.multi_input import MultiInputClassifier
    >>> from multiequi.groups import Rot90
    >>> backbone = nn.Sequential(nn.Flatten(), nn.Linear(16, 8))            # one Siamese branch
    >>> clf = MultiInputClassifier(backbone, [Rot90(), Rot90(), Rot90()], head=nn.Linear(3 * 8, 5))
    >>> views = torch.randn(2, 3, 1, 4, 4)                                  # 3 views per example
    >>> logits = clf(*views.unbind(1))
    >>> turned = [torch.rot90(v, k, (-2, -1)) for v, k in zip(views.unbind(1), (1, 2, 3))]
    >>> torch.allclose(logits, clf(*turned), atol=1e-6)
    True
    """

    def __init__(
        self,
        models: Model | Sequence[Model],
        groups: Sequence[Group],
        *,
        head: Model | None = None,
        fuse: Fuse = "concat",
        is_models: ISModels = None,
        shared_is: bool = False,
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
    ) -> None:
        super().__init__()
        if fuse not in ("concat", "stack", "sum", "mean"):
            raise ValueError(f"fuse must be 'concat', 'stack', 'sum' or 'mean', got {fuse!r}")
        if head is not None and not callable(head):
            raise TypeError(f"head must be callable or None, got {type(head).__name__}")
        self.features = MultiInputNetwork(
            models,
            groups,
            is_models=is_models,
            shared_is=shared_is,
            output="invariant",
            chunk_size=chunk_size,
            sorted_sum=sorted_sum,
        )
        self.head = head
        self.fuse = fuse

    @property
    def copies_per_example(self) -> int:
        """Transformed copies per example (see :attr:`MultiInputNetwork.copies_per_example`)."""
        return self.features.copies_per_example

    def forward(self, *xs: Tensor) -> Any:
        """``head(fuse(z_1, …, z_N))`` for inputs ``x_1, …, x_N`` (batch dimension first)."""
        zs = self.features(*xs)
        if self.fuse == "concat":
            try:
                z = torch.cat(zs, dim=-1)
            except RuntimeError as err:
                raise ValueError(
                    "fuse='concat' needs features that differ only in the last axis; got "
                    f"{[tuple(t.shape) for t in zs]}"
                ) from err
        else:
            if len({tuple(t.shape) for t in zs}) > 1:
                raise ValueError(f"fuse={self.fuse!r} needs features of one shape; got {[tuple(t.shape) for t in zs]}")
            z = torch.stack(zs, dim=1)
            if self.fuse == "sum":
                z = z.sum(1)
            elif self.fuse == "mean":
                z = z.mean(1)
        return z if self.head is None else self.head(z)
