"""The one training loop of the lab, through Hugging Face Accelerate, and its multi-process helpers.

- :mod:`.loop`: :func:`train` with checkpoints in safetensors, resume, model selection on a
  validation score, gradient clipping, progress bar; runs unchanged under ``accelerate launch``.
- :mod:`.distributed`: :func:`is_main_process`, :func:`join_process_group`,
  :func:`wait_for_everyone`, :func:`wait_for_main`, :func:`leave_process_group`: under
  ``accelerate launch`` only the main process writes results, the others wait for them.

Needs the experiments extra (``pip install 'multiequi[experiments]'``): accelerate and safetensors
are imported when a run starts.
"""

from .distributed import is_main_process as is_main_process
from .distributed import join_process_group as join_process_group
from .distributed import leave_process_group as leave_process_group
from .distributed import wait_for_everyone as wait_for_everyone
from .distributed import wait_for_main as wait_for_main
from .loop import CheckpointError as CheckpointError
from .loop import TrainConfig as TrainConfig
from .loop import TrainingInterrupted as TrainingInterrupted
from .loop import TrainResult as TrainResult
from .loop import load_weights as load_weights
from .loop import make_accelerator as make_accelerator
from .loop import save_weights as save_weights
from .loop import train as train

__all__ = [
    "CheckpointError",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "is_main_process",
    "join_process_group",
    "leave_process_group",
    "load_weights",
    "make_accelerator",
    "save_weights",
    "train",
    "wait_for_everyone",
    "wait_for_main",
]
