"""Cost benchmarks: copies, wall time, peak memory and equivariance error, side by side.

``multiequi bench`` times, on the same machine and in one run:

- the plain model; test-time augmentation over the full product, one transform per call (as
  ``ttach`` does); :class:`~multiequi.Equitune` over the product (``Π |G_i|`` copies, batched);
  :class:`~multiequi.MultiEquitune` over the factors (``Σ |G_i|`` copies, batched); both with
  ``chunk_size`` too; and the real ``ttach`` package's D4 wrapper on the image workload;
- on four workloads: EfficientNet-Lite0 (real weights) with Rot90 and Flip, a GPT-2
  language model with N = 1 … 6 word-swap factors (C2, C3, C2, …), SCAN-II fine-tuning and
  greedy decoding through Equitune (8 copies) and MultiEquitune (6 copies), and *generation*:
  greedy decoding with a key-value cache through :class:`multiequi.hf.EquivariantLM`
  (multi-equitune and equitune) against the plain model on the same rows and the predecessor's
  loop (:class:`EquiGPT2Loop`), on GPT-2's architecture and the SmolLM2 stand-in.

Every cell reports the copies through the model (counted, not computed), the wall time of a
batch (median, min, max after warm-up), peak memory and the invariance or equivariance error.

- :func:`run_bench`, :class:`BenchConfig`, :class:`Scenario`: the runner.
- :func:`image_workload`, :func:`token_workload`, :func:`gpt2_model`, :func:`scan_throughput`,
  :func:`generation_bench`: the workloads.
- :class:`TTALoop`: test-time augmentation, one model call per group element;
  :class:`EquiGPT2Loop`: the predecessor's generation loop, one model call per copy, example and token.
- :class:`PeakMemory`: peak memory; timing goes through :mod:`multiequi.lab.reporting.timing`.
- :func:`evaluate_targets`, :func:`write_outputs`, :func:`format_report`: tables, plots, verdicts.
- :mod:`.gpu`: the same benchmark on a CUDA device after a reference check against the CPU in
  float64 (``multiequi bench gpu``); :mod:`.profile`: where one cell's time goes
  (``multiequi bench profile``).

A new workload is a builder returning a :class:`Workload` in :mod:`._workloads` (inference cells)
or, for a different kind of measurement, a function beside :func:`scan_throughput` that the runner
calls when its name is in ``BenchConfig.workloads`` (see ``docs/architecture.md``).
"""

from ._generation import GENERATION_MODELS as GENERATION_MODELS
from ._generation import EquiGPT2Loop as EquiGPT2Loop
from ._generation import format_generation as format_generation
from ._generation import generation_bench as generation_bench
from ._generation import generation_error as generation_error
from ._memory import PeakMemory as PeakMemory
from ._memory import cpu_peak_supported as cpu_peak_supported
from ._memory import exact_cpu_accounting as exact_cpu_accounting
from ._methods import Method as Method
from ._methods import TTALoop as TTALoop
from ._methods import build_methods as build_methods
from ._report import evaluate_generation_targets as evaluate_generation_targets
from ._report import evaluate_targets as evaluate_targets
from ._report import format_report as format_report
from ._report import make_plots as make_plots
from ._report import write_outputs as write_outputs
from ._runner import RECORD_FIELDS as RECORD_FIELDS
from ._runner import BenchConfig as BenchConfig
from ._runner import BenchResult as BenchResult
from ._runner import Scenario as Scenario
from ._runner import default_scenarios as default_scenarios
from ._runner import load_average as load_average
from ._runner import run_bench as run_bench
from ._scan import format_scan_throughput as format_scan_throughput
from ._scan import scan_throughput as scan_throughput
from ._workloads import TOKEN_CONFIGS as TOKEN_CONFIGS
from ._workloads import Workload as Workload
from ._workloads import gpt2_model as gpt2_model
from ._workloads import image_workload as image_workload
from ._workloads import token_workload as token_workload

__all__ = [
    "GENERATION_MODELS",
    "RECORD_FIELDS",
    "TOKEN_CONFIGS",
    "BenchConfig",
    "BenchResult",
    "EquiGPT2Loop",
    "Method",
    "PeakMemory",
    "Scenario",
    "TTALoop",
    "Workload",
    "build_methods",
    "cpu_peak_supported",
    "default_scenarios",
    "evaluate_generation_targets",
    "evaluate_targets",
    "exact_cpu_accounting",
    "format_generation",
    "format_report",
    "format_scan_throughput",
    "generation_bench",
    "generation_error",
    "gpt2_model",
    "image_workload",
    "load_average",
    "make_plots",
    "run_bench",
    "scan_throughput",
    "token_workload",
    "write_outputs",
]
