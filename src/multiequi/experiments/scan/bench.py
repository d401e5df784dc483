"""Throughput of fine-tuning (and greedy decoding) through Equitune and MultiEquitune on SCAN-II.

The same batches go through the plain model, Equitune over the 8-element product of the three
word-swap groups and MultiEquitune over the three factors (6 copies). One *training step* is a
teacher-forced forward pass, the backward pass and an Adam step, exactly as in fine-tuning (the
free-running half of fine-tuning is timed by *decoding*: greedy decoding of the batch for a
fixed 49 tokens, independent of the weights). Methods are interleaved repeat by repeat, so a
slow period of a shared machine hits all of them; the median over repeats is reported.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any, cast

import torch

from ..common import atomic_write_json, machine_info, markdown_table
from ..common import progress as common_progress
from .data import Vocab, all_commands
from .model import Seq2Seq, greedy_decode, pack
from .symmetry import factors_for, wrap
from .training import PairData, seq2seq_loss

__all__ = ["bench", "format_bench"]


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def bench(
    cell: str = "gru",
    batch_size: int = 64,
    steps: int = 10,
    repeats: int = 5,
    device: str | None = None,
    hidden: int = 64,
    json_path: str | os.PathLike[str] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Examples per second of training steps and of greedy decoding, per method.

    Returns a dict with ``rows`` (method, copies, train_examples_per_s, decode_examples_per_s,
    relative costs) and ``machine``; also written to ``json_path`` when given.

    Examples
    --------
    >>> r = bench(batch_size=4, steps=1, repeats=1, hidden=8, show_progress=False)
    >>> [row["copies"] for row in r["rows"]]
    [1, 8, 6]
    """
    if min(batch_size, steps, repeats) < 1:
        raise ValueError(f"batch_size, steps and repeats must be >= 1, got {batch_size}, {steps}, {repeats}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sync = _sync(dev)
    vocab = Vocab.of("scan2")
    n_in = len(vocab.inputs)
    commands = all_commands("scan2")
    gen = torch.Generator().manual_seed(0)
    picks = torch.randint(0, len(commands), (steps * batch_size,), generator=gen).tolist()
    data = PairData([commands[i] for i in picks], vocab)
    batches = [
        tuple(t.to(dev) for t in data.__getitems__(list(range(k * batch_size, (k + 1) * batch_size))))
        for k in range(steps)
    ]
    torch.manual_seed(0)
    model = Seq2Seq(n_in, len(vocab.outputs), cell, hidden).to(dev)  # type: ignore[arg-type]
    factors = factors_for(vocab, ["verb", "lr", "ud"])
    methods = {
        "plain": model,
        "equitune": wrap(model, factors, "equitune"),
        "multi-equitune": wrap(model, factors, "multi-equitune"),
    }
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    train_t: dict[str, list[float]] = {m: [] for m in methods}
    decode_t: dict[str, list[float]] = {m: [] for m in methods}

    def train_steps(f: Any) -> float:
        f.train()
        sync()
        t0 = time.perf_counter()
        for b in batches:
            # b is the (src, tgt) pair from PairData.__getitems__, moved to dev
            loss = seq2seq_loss(f, cast(tuple[torch.Tensor, torch.Tensor], b), n_in, teacher_forcing=1.0)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - t0

    def decode(f: Any) -> float:
        f.eval()
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            greedy_decode(f, batches[0][0], 49, n_in, stop_at_eos=False)
        sync()
        return time.perf_counter() - t0

    for f in methods.values():  # warm-up
        f(pack(batches[0][0], batches[0][1][:, :-1], n_in), src_len=batches[0][0].shape[1])
    bar = common_progress(total=repeats * len(methods), desc="bench scan", enabled=show_progress, unit="run")
    for _ in range(repeats):
        for name, f in methods.items():
            train_t[name].append(train_steps(f))
            decode_t[name].append(decode(f))
            bar.update()
    bar.close()
    rows: list[dict[str, Any]] = []
    for name, f in methods.items():
        tr = statistics.median(train_t[name])
        de = statistics.median(decode_t[name])
        rows.append(
            {
                "method": name,
                "copies": int(getattr(f, "copies_per_example", 1)),
                "train_examples_per_s": steps * batch_size / tr,
                "decode_examples_per_s": batch_size / de,
                "train_ms_per_step": 1000 * tr / steps,
            }
        )
    base = {r["method"]: r for r in rows}
    for r in rows:
        r["train_cost_vs_equitune"] = base["equitune"]["train_examples_per_s"] / r["train_examples_per_s"]
        r["decode_cost_vs_equitune"] = base["equitune"]["decode_examples_per_s"] / r["decode_examples_per_s"]
    result = {
        "cell": cell,
        "hidden": hidden,
        "batch_size": batch_size,
        "steps": steps,
        "repeats": repeats,
        "rows": rows,
        "machine": machine_info(str(dev)),
    }
    if json_path is not None:
        atomic_write_json(json_path, result)
    return result


def format_bench(result: dict[str, Any]) -> str:
    """A markdown table of :func:`bench`'s result with the machine."""
    m = result["machine"]
    head = (
        f"SCAN-II fine-tuning throughput, {result['cell'].upper()} hidden {result['hidden']}, batch "
        f"{result['batch_size']}, {result['steps']} steps x {result['repeats']} repeats (median); "
        f"{m.get('gpu') or m.get('processor')}, {m.get('cpu_count')} cores, torch {m.get('torch')} "
        f"({m.get('torch_threads')} threads)"
    )
    return head + "\n\n" + markdown_table(result["rows"], digits=2)
