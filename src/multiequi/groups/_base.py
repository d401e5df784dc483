"""Finite groups as objects, and the tensors they act on.

A :class:`Group` stores the abstract structure (elements listed identity first, a composition
table and inverses) together with its action on tensors. Every action is applied to a *stack*
of tensors in one tensor operation: ``transform(x, elements)`` applies ``elements[k]`` to
``x[k]``, so the whole orbit of a batch is one gather, never a Python loop over elements.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

__all__ = ["Group", "as_elements", "checks_enabled", "on_device", "trusted"]

_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("multiequi_trusted", default=False)


@contextlib.contextmanager
def trusted() -> Iterator[None]:
    """Skip the value checks of group actions (element and token-id ranges) inside this block.

    The symmetrizers validate their input once with :meth:`Group.validate`, then build orbits,
    canonical forms and aligned outputs from it; re-checking every derived tensor would cost a
    reduction per factor and per call (measured: most of the fixed cost of a small call). A
    :class:`Group` subclass skips its own value checks when :func:`checks_enabled` is ``False``.

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import Rot90, checks_enabled, trusted
    >>> with trusted():
    ...     checks_enabled()
    False
    >>> checks_enabled()
    True
    """
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def checks_enabled() -> bool:
    """``False`` inside :func:`trusted`: a group's :meth:`~Group.transform` may then skip the
    value checks of its arguments (they were validated once, upstream)."""
    return not _TRUSTED.get()


def on_device(owner: object, name: str, t: Tensor, device: torch.device | str) -> Tensor:
    """``t`` on ``device``, copied once per device and cached on ``owner`` (group tables, index
    maps): a host-to-device copy per call would cost a transfer and often a synchronization."""
    if t.device == torch.device(device):
        return t
    cache: dict = owner.__dict__.setdefault("_device_tensors", {})
    key = (name, str(device))
    out = cache.get(key)
    if out is None:
        out = cache[key] = t.to(device)
    return out


def as_elements(elements: Tensor | Sequence[int] | int, order: int, device: torch.device) -> Tensor:
    """Return ``elements`` as a 1-D int64 tensor on ``device``, checked against ``order``
    (outside :func:`trusted`). Subclasses of :class:`Group` call it at the start of
    :meth:`~Group.transform`.

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import as_elements
    >>> as_elements([0, 3], 4, torch.device("cpu"))
    tensor([0, 3])
    """
    if isinstance(elements, int):
        elements = [elements]
    e = torch.as_tensor(elements, dtype=torch.long, device=device).reshape(-1)
    # the range check reads two values back from the device (a synchronization on a GPU); the
    # symmetrizers build their element tensors themselves and skip it inside ``trusted()``
    if e.numel() and checks_enabled() and (int(e.min()) < 0 or int(e.max()) >= order):
        raise ValueError(f"group element indices must lie in [0, {order}); got {e.tolist()}")
    return e


class Group:
    """A finite group acting on tensors.

    Elements are the integers ``0 .. len(G) - 1`` with ``0`` the identity; ``names`` gives each a
    readable name. ``table[a, b]`` is the index of ``a ∘ b`` (apply ``b`` first, then ``a``), and
    ``inverses[a]`` the index of ``a⁻¹``.

    Groups compare by structure: two groups are equal (and hash alike) when they are the same
    group acting the same way, e.g. ``Rot90() == Rot90()`` and
    ``Product(Rot90(), Flip()) == Product(Rot90(), Flip())`` (see :meth:`signature`).

    Defining a new group (the public extension point): subclass :class:`Group`, pass the
    composition table and element names to ``__init__``, and implement

    - :meth:`transform` (the action on a stack of tensors, one tensor operation; start it with
      :func:`as_elements`),
    - :meth:`probe` (a small tensor on which the action is faithful, used to check
      compositions and to build products),
    - :meth:`signature` (a hashable description of the group and its action, for equality),

    and optionally :meth:`validate` (input checks), :meth:`canonicalize` (how multi-equitune
    makes an input invariant to this group; default: a fixed template) and
    :meth:`transform_vocab` (an action on an output vocabulary).

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import Rot90
    >>> G = Rot90()
    >>> len(G), G.names[1], G.inverse(1)
    (4, 'rot90', 3)
    >>> x = torch.arange(4.0).reshape(2, 2)
    >>> G.orbit(x).shape
    torch.Size([4, 2, 2])
    >>> G == Rot90(), G.sample(5, torch.Generator().manual_seed(0)).tolist()
    (True, [0, 3, 1, 0, 3])

    A new group: sign flips of vectors (C2 acting by ``x -> -x``).

    >>> from multiequi.groups import Group, as_elements
    >>> class SignFlip(Group):
    ...     def __init__(self):
    ...         super().__init__(torch.tensor([[0, 1], [1, 0]]), ["e", "neg"])
    ...     def transform(self, x, elements):
    ...         e = as_elements(elements, len(self), x.device)
    ...         sign = 1 - 2 * e.to(x.dtype)
    ...         return x * sign.reshape(-1, *[1] * (x.dim() - 1))
    ...     def probe(self):
    ...         return torch.ones(1, dtype=torch.float64)
    ...     def signature(self):
    ...         return ()
    >>> SignFlip().act(torch.tensor([1.0, -2.0]), 1), SignFlip() == SignFlip()
    (tensor([-1.,  2.]), True)
    """

    #: How :class:`~multiequi.MultiEquitune` makes an input invariant to this group:
    #: ``"template"`` (choose the orbit member that maximises a fixed template score) or
    #: ``"collapse"`` (map each orbit to a representative, as for word swaps).
    canonicalization: str = "template"

    #: Whether the factors' actions commute (``True`` for a group that is not a product). Only a
    #: :class:`~multiequi.groups.Product` of non-commuting factors, such as ``Rot90()`` and
    #: ``Flip()`` (which generate D4, not C4 × C2), has ``False``.
    factors_commute: bool = True

    def __init__(self, table: Tensor, names: Sequence[str]) -> None:
        table = torch.as_tensor(table, dtype=torch.long)
        n = table.shape[0]
        if table.shape != (n, n) or len(names) != n:
            raise ValueError(f"composition table must be {len(names)}x{len(names)}, got {tuple(table.shape)}")
        ar = torch.arange(n)
        if not (torch.equal(table[0], ar) and torch.equal(table[:, 0], ar)):
            raise ValueError("element 0 must be the identity")
        if not all(torch.equal(row.sort().values, ar) for row in table):
            raise ValueError("composition table is not a Latin square: the elements do not form a group")
        inv = (table == 0).long().argmax(dim=1)
        self._table = table
        self._inverses = inv
        self._names = list(names)

    # ------------------------------------------------------------------ structure
    def __len__(self) -> int:
        return self._table.shape[0]

    @property
    def order(self) -> int:
        """Number of elements."""
        return len(self)

    @property
    def names(self) -> list[str]:
        """Readable element names, identity first."""
        return list(self._names)

    @property
    def elements(self) -> range:
        """Element indices ``0 .. len(G) - 1`` (``0`` is the identity)."""
        return range(len(self))

    @property
    def table(self) -> Tensor:
        """Composition table: ``table[a, b]`` is the index of ``a ∘ b`` (``b`` acts first)."""
        return self._table.clone()

    @property
    def inverses(self) -> Tensor:
        """``inverses[a]`` is the index of ``a⁻¹``."""
        return self._inverses.clone()

    def compose(self, a: int, b: int) -> int:
        """Index of ``a ∘ b`` (``b`` acts first)."""
        return int(self._table[a, b])

    def inverse(self, a: int) -> int:
        """Index of ``a⁻¹``."""
        return int(self._inverses[a])

    def is_abelian(self) -> bool:
        """Whether all elements commute."""
        return bool(torch.equal(self._table, self._table.T))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` independent uniformly random elements (int64, on the CPU), drawn from
        ``generator`` (default: torch's global generator), so a seeded generator gives the same
        elements on every run.

        Examples
        --------
        >>> import torch
        >>> from multiequi.groups import Flip
        >>> Flip().sample(6, torch.Generator().manual_seed(1)).tolist()
        [1, 1, 0, 0, 1, 1]
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"sample needs a number of elements n >= 0, got {n!r}")
        return torch.randint(len(self), (int(n),), generator=generator)

    # ------------------------------------------------------------------ equality
    def signature(self) -> tuple:
        """A hashable description of this group *and its action*: groups are equal when their
        types and signatures are.

        The built-in groups describe themselves by their parameters (``Rot90``: its dims;
        ``TokenCycles``: its cycles and vocabularies; ``Product``: its factors). The default
        here is the object's identity, so a subclass that does not override it is equal only to
        itself.
        """
        return (id(self),)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Group) or type(self) is not type(other):
            return NotImplemented if not isinstance(other, Group) else False
        return self.signature() == other.signature()

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, self.signature()))

    # ------------------------------------------------------------------ action
    def transform(self, x: Tensor, elements: Tensor) -> Tensor:
        """Apply ``elements[k]`` to ``x[k]`` for every ``k`` in one tensor operation.

        ``x`` is a stack: its first dimension has ``len(elements)`` entries, and the action acts
        on the remaining dimensions.
        """
        raise NotImplementedError

    def probe(self) -> Tensor:
        """A small tensor (no leading stack dimension) on which the action is faithful."""
        raise NotImplementedError

    def validate(self, x: Tensor) -> None:
        """Raise a clear error if ``x`` is not something this group can act on (default: no check;
        token groups check dtype and id range)."""

    def act(self, x: Tensor, g: int) -> Tensor:
        """Apply element ``g`` to ``x``."""
        e = as_elements(g, len(self), x.device)
        return self.transform(x.unsqueeze(0), e)[0]

    def orbit(self, x: Tensor) -> Tensor:
        """All transformed copies ``g·x`` stacked on a new first dimension (``len(G)`` rows)."""
        n = len(self)
        e = torch.arange(n, device=x.device)
        return self.transform(x.unsqueeze(0).expand(n, *x.shape), e)

    def _element_tensor(self, device: torch.device) -> Tensor:
        return torch.arange(len(self), device=device)

    def inverse_elements(self, device: torch.device | None = None) -> Tensor:
        """``inverses`` as a tensor on ``device``."""
        return on_device(self, "inverses", self._inverses, device) if device is not None else self._inverses.clone()

    # ------------------------------------------------------------------ output spaces
    def transform_vocab(self, y: Tensor, elements: Tensor) -> Tensor:
        """Action on an output vocabulary axis (the last axis). Only token groups have one."""
        raise TypeError(
            f"{self!r} has no action on an output vocabulary axis; output='vocab' needs a token "
            "group such as TokenCycles"
        )

    @property
    def has_vocab_action(self) -> bool:
        """Whether ``output="vocab"`` is meaningful for this group."""
        return False

    # ------------------------------------------------------------------ canonicalisation
    def canonicalize(self, x: Tensor, symmetric_under: Group | None = None) -> Tensor:
        """Map a batch ``x`` (batch dimension first) to one member of each input's orbit.

        The result is invariant to this group. With ``symmetric_under=H`` it is also
        equivariant to a group ``H`` that commutes with this one (up to an element of this
        group when they do not commute): the choice uses a fixed, seeded random template
        averaged over ``H``, so ``H`` cannot change which orbit member is chosen.
        """
        if not torch.is_floating_point(x):
            raise TypeError(f"template canonicalisation for {self!r} needs a floating-point input, got {x.dtype}")
        orb = self.orbit(x)  # (n, B, ...)
        w = _template(tuple(x.shape[1:]), x.dtype, x.device)
        if symmetric_under is not None:
            w = symmetric_under.orbit(w).mean(0)
        scores = (orb * w).flatten(2).sum(-1)  # (n, B)
        k = scores.argmax(0)
        return orb[k, torch.arange(x.shape[0], device=x.device)]

    # ------------------------------------------------------------------ helpers
    def matrices(self, shape: Sequence[int], dtype: torch.dtype = torch.float64) -> Tensor:
        """The matrices of a linear action on tensors of ``shape``, flattened.

        Returns ``(len(G), D, D)`` with ``D = prod(shape)``; column ``j`` of ``M[g]`` is
        ``g·e_j``. Only meaningful for linear actions (positions, matrices, vocab axes).
        """
        d = 1
        for s in shape:
            d *= int(s)
        basis = torch.eye(d, dtype=dtype).reshape(d, *shape)
        orb = self.orbit(basis)  # (n, d, *shape): orb[g, j] = g·e_j
        return orb.reshape(len(self), d, d).transpose(1, 2).contiguous()

    def __mul__(self, other: Group) -> Group:
        from ._product import Product

        return Product(self, other)

    def __iter__(self):
        return iter(range(len(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(order={len(self)})"


_TEMPLATES: dict[tuple, Tensor] = {}


def _template(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A fixed random template for canonicalisation (seeded, the same in every process)."""
    key = (shape, dtype, str(device))
    t = _TEMPLATES.get(key)
    if t is None:  # one host-to-device copy per shape, dtype and device, not one per call
        base = _TEMPLATES.get((shape, torch.float64, "cpu"))
        if base is None:
            gen = torch.Generator().manual_seed(20231016)
            base = torch.randn(shape, generator=gen, dtype=torch.float64)
            _TEMPLATES[(shape, torch.float64, "cpu")] = base
        t = _TEMPLATES[key] = base.to(device=device, dtype=dtype)
    return t
