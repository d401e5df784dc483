"""The models of the multi-image experiment, all built from the core's public API.

Every model maps a batch of K-tuples ``(B, K, C, S, S)`` to class logits ``(B, classes)`` and
declares the symmetries it claims (tested exactly in float64 by ``tests/test_multi_image_models.py``):

============================  ==================================================  =======================  ==========
column                        construction                                        invariant to             view order
============================  ==================================================  =======================  ==========
``CNN``                       Siamese CNN per view, features concatenated, head   nothing                  matters
``CNN-Fusion``                + ``z_j += Σ_{i≠j} F(x_i)`` (no group averaging)    nothing                  matters
``Multi-GCNN``                each view's branch equituned over its own group     each view's group alone  matters
``Multi-GCNN-Fusion``         + IS term ``z_j += Σ_{i≠j} A_{G_i}[F](x_i)``        each view's group alone  matters
``DSS``                       DSS layer (one group shared by all views), mean     the shared group acting  does not
                              over views, head                                    on all views at once
``DeepSets``                  DeepSets layer, mean over views, head               nothing                  does not
============================  ==================================================  =======================  ==========

The concatenating models depend on view order, as the paper's did: the head sees view 1's
features in its first 64 inputs. That is a feature when the views carry different groups
(``mixed``: view 1 rotated, view 2 flipped) and a restriction otherwise. DSS is not invariant to
one view transformed alone: its set term sees the mean of the images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from multiequi.groups import Group, TrivialGroup
from multiequi.multi_input import DeepSetsLayer, DSSLayer, MultiInputClassifier, joint_group

__all__ = ["BASE_MODELS", "COLUMNS", "SiameseCNN", "TupleClassifier", "build_model", "model_label", "parse_label"]

#: The four architectures; the first two come with and without the fusion term.
BASE_MODELS = ("CNN", "Multi-GCNN", "DSS", "DeepSets")
#: The six columns of the paper-style table, in order.
COLUMNS = ("CNN", "CNN-Fusion", "Multi-GCNN", "Multi-GCNN-Fusion", "DSS", "DeepSets")


def model_label(model: str, fusion: bool) -> str:
    """Column name of a model: ``"CNN"`` with ``fusion`` is ``"CNN-Fusion"``.

    Examples
    --------
    >>> model_label("Multi-GCNN", True)
    'Multi-GCNN-Fusion'
    """
    return f"{model}-Fusion" if fusion else model


def parse_label(label: str) -> tuple[str, bool]:
    """Inverse of :func:`model_label`.

    Examples
    --------
    >>> parse_label("CNN-Fusion")
    ('CNN', True)
    """
    if label not in COLUMNS:
        raise ValueError(f"unknown model {label!r}; expected one of {', '.join(COLUMNS)}")
    if label.endswith("-Fusion"):
        return label[: -len("-Fusion")], True
    return label, False


class SiameseCNN(nn.Module):
    """The paper's per-view branch: 3 × [conv5 → ReLU → maxpool 2 → BN], FC, ReLU, dropout.

    Each convolution has its own weights (the published code's third convolution reused the
    second's). Convolutions are padded by 2 ("same"), so an ``S``-pixel image gives
    ``width × ⌊S/8⌋²`` features before the FC layer: 16 × 4 × 4 = 256 for 32 px, as the paper's
    unpadded convolutions gave for 64 px.

    Parameters
    ----------
    channels : int
        Input channels (1 grey, 3 RGB).
    size : int
        Input side in pixels (at least 8).
    width : int
        Channels of every convolution (paper: 16).
    features : int
        Output features (paper: FC 64).
    dropout : float
        Dropout after the FC layer (paper: 0.5).

    Examples
    --------
    >>> net = SiameseCNN(channels=1, size=32)
    >>> net(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 64])
    """

    def __init__(
        self, channels: int = 1, size: int = 32, width: int = 16, features: int = 64, dropout: float = 0.5
    ) -> None:
        super().__init__()
        if size < 8:
            raise ValueError(f"images must be at least 8 px (three 2x2 poolings), got {size}")
        layers: list[nn.Module] = []
        c = channels
        for _ in range(3):
            layers += [nn.Conv2d(c, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(width)]
            c = width
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(width * (size // 8) ** 2, features), nn.ReLU(), nn.Dropout(dropout)
        )
        self.features = features

    def forward(self, x: Tensor) -> Tensor:
        """Features ``(B, features)`` of images ``(B, C, S, S)``."""
        return self.fc(self.convs(x))


class TupleClassifier(nn.Module):
    """A classifier of K-tuples of images ``(B, K, C, S, S)`` with the symmetries it declares.

    Build it with :func:`build_model`. Call it with ``model(x)`` on a stacked batch, or as a
    multi-input model with ``model.multi_input(x_1, …, x_K)`` (what
    :func:`multiequi.testing.equivariance_error` expects for one group per input).

    Attributes
    ----------
    name : str
        Column name (``"Multi-GCNN-Fusion"``, …).
    view_groups : list of Group
        Groups under which each view may be transformed *independently* of the others without
        changing the output (the trivial group where no such claim is made).
    joint_group : Group or None
        A group under which all views transformed *together* leave the output unchanged, beyond
        what ``view_groups`` implies (DSS's shared group).
    order_invariant : bool
        Whether permuting the views leaves the output unchanged.
    branches : list of SiameseCNN
        The per-view networks (for copy counting).
    """

    def __init__(
        self,
        name: str,
        net: nn.Module,
        head: nn.Module | None,
        k: int,
        view_groups: Sequence[Group],
        joint: Group | None,
        order_invariant: bool,
        branches: Sequence[SiameseCNN],
        copies: int,
    ) -> None:
        super().__init__()
        self.name = name
        self.net = net
        self.head = head
        self.k = k
        self.view_groups = list(view_groups)
        self.joint_group = joint
        self.order_invariant = order_invariant
        self.branches = list(branches)
        self._copies = copies

    @property
    def copies_per_example(self) -> int:
        """Images that go through a per-view branch per example (all views, all terms)."""
        return self._copies

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, classes)`` of tuples ``(B, K, C, S, S)``."""
        if x.dim() != 5 or x.shape[1] != self.k:
            raise ValueError(f"{self.name} expects tuples of shape (batch, K={self.k}, C, S, S); got {tuple(x.shape)}")
        if self.head is None:  # a MultiInputClassifier: one input per view
            return self.net(*x.unbind(1))
        return self.head(self.net(x).mean(1))  # a set layer: (B, K, F), mean over the views

    def multi_input(self, *views: Tensor) -> Tensor:
        """The same model called with one tensor per view ``(B, C, S, S)``."""
        return self(torch.stack(views, 1))


def build_model(
    label: str,
    k: int,
    groups: Sequence[Group],
    num_classes: int,
    channels: int = 1,
    size: int = 32,
    width: int = 16,
    features: int = 64,
    dropout: float = 0.5,
) -> TupleClassifier:
    """One of the six models of the paper-style table.

    Parameters
    ----------
    label : str
        A name from :data:`COLUMNS`.
    k : int
        Views per tuple.
    groups : list of Group
        The group of each view (``data.view_groups(...)``): used by Multi-GCNN (each branch
        equituned over its view's group) and DSS (one group generated by all of them); the CNN
        and DeepSets models ignore them.
    num_classes, channels, size, width, features, dropout
        Sizes; the branch is :class:`SiameseCNN`.

    Returns
    -------
    TupleClassifier

    Notes
    -----
    - ``CNN``: ``MultiInputClassifier`` with the trivial group on every view: ``z_j = M(x_j)``,
      features concatenated, ``Linear(K·64, classes)``.
    - ``Multi-GCNN``: the same with each view's group: ``z_j = A_{G_j}[M](x_j)``
      (``Equitune(M, G_j, output="invariant")``).
    - ``-Fusion``: ``shared_is=True`` with a second Siamese branch ``F``:
      ``z_j += Σ_{i≠j} A_{G_i}[F](x_i)``, the IS term of an invariant output. For ``CNN-Fusion``
      the groups are trivial, so the fusion term is the same cross-view sum without group
      averaging.
    - ``DSS``: ``DSSLayer(M, F, G, output="invariant", reduction="mean")`` with ``G`` the group
      shared by all views (C4; D4 when views carry C4 and C2), then the mean over views and
      ``Linear(64, classes)``.
    - ``DeepSets``: ``DeepSetsLayer(M, F, reduction="mean")``, the mean over views,
      ``Linear(64, classes)``.

    Examples
    --------
    >>> from multiequi.lab.experiments.multi_image.data import view_groups
    >>> m = build_model("Multi-GCNN-Fusion", 2, view_groups("rot", 2), num_classes=10).eval()
    >>> m(torch.zeros(3, 2, 1, 32, 32)).shape, m.copies_per_example
    (torch.Size([3, 10]), 16)
    """
    base, fusion = parse_label(label)
    groups = list(groups)
    if len(groups) != k:
        raise ValueError(f"groups must list one group per view (K={k}), got {len(groups)}")

    def branch() -> SiameseCNN:
        return SiameseCNN(channels, size, width, features, dropout)

    if base in ("CNN", "Multi-GCNN"):
        used = [TrivialGroup()] * k if base == "CNN" else groups
        m = branch()
        f = branch() if fusion else None
        clf = MultiInputClassifier(
            m,
            used,
            head=nn.Linear(k * features, num_classes),
            fuse="concat",
            is_models=f,
            shared_is=fusion,
            chunk_size=None,
        )
        return TupleClassifier(
            label,
            clf,
            None,
            k,
            used,
            None,
            order_invariant=False,
            branches=[m] if f is None else [m, f],
            copies=clf.copies_per_example,
        )
    m, f = branch(), branch()
    if base == "DSS":
        g = joint_group(groups)
        layer: nn.Module = DSSLayer(m, f, g, output="invariant", reduction="mean", chunk_size=None)
        joint: Group | None = g
        copies = len(g) * (k + 1)
    else:
        layer = DeepSetsLayer(m, f, reduction="mean")
        joint = None
        copies = k + 1
    return TupleClassifier(
        label,
        layer,
        nn.Linear(features, num_classes),
        k,
        [TrivialGroup()] * k,
        joint,
        order_invariant=True,
        branches=[m, f],
        copies=copies,
    )
