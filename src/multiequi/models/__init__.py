"""Pretrained backbone models used by the experiments and demos."""

from multiequi.models.efficientnet_lite import (
    IMAGE_SIZE,
    INPUT_MEAN,
    INPUT_STD,
    EfficientNetLite0,
    default_weights_path,
    efficientnet_lite0,
    preprocess,
)

__all__ = [
    "IMAGE_SIZE",
    "INPUT_MEAN",
    "INPUT_STD",
    "EfficientNetLite0",
    "default_weights_path",
    "efficientnet_lite0",
    "preprocess",
]
