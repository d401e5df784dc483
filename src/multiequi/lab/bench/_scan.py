"""The SCAN throughput workload: fine-tuning (and greedy decoding) through Equitune and
MultiEquitune on SCAN-II (``multiequi bench --workloads scan``, or ``multiequi scan bench``).

The same batches go through the plain model, Equitune over the 8-element product of the three
word-swap groups and MultiEquitune over the three factors (6 copies). One *training step* is a
teacher-forced forward pass, the backward pass and an Adam step, exactly as in fine-tuning (the
free-running half of fine-tuning is timed by *decoding*: greedy decoding of the batch for a
fixed 49 tokens, independent of the weights). Methods are interleaved repeat by repeat, so a
slow period of a shared machine hits all of them; the median over repeats is reported.
"""

from __future__ import annotations

import functools
import os
import statistics
from collections.abc import Callable
from typing import Any, cast

import torch

from multiequi import Equitune, MultiEquitune
from multiequi.groups import Product
from multiequi.lab.datasets.scan import PairData, Vocab, all_commands, factors_for
from multiequi.lab.reporting import atomic_write_json, interleaved_times, machine_info, markdown_table
from multiequi.lab.reporting import progress as common_progress
from multiequi.models import Seq2Seq, greedy_decode, pack, seq2seq_loss

__all__ = ["format_scan_throughput", "scan_throughput"]


def scan_throughput(
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
    >>> r = scan_throughput(batch_size=4, steps=1, repeats=1, hidden=8, show_progress=False)
    >>> [row["copies"] for row in r["rows"]]
    [1, 8, 6]
    """
    if min(batch_size, steps, repeats) < 1:
        raise ValueError(f"batch_size, steps and repeats must be >= 1, got {batch_size}, {steps}, {repeats}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
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
    methods = {  # one model call per batch: the vocabulary action, no chunking
        "plain": model,
        "equitune": Equitune(model, Product(*factors), output="vocab", chunk_size=None),
        "multi-equitune": MultiEquitune(model, factors, output="vocab", chunk_size=None),
    }
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)

    def train_steps(f: Any) -> None:
        f.train()
        for b in batches:
            # b is the (src, tgt) pair from PairData.__getitems__, moved to dev
            loss = seq2seq_loss(f, cast(tuple[torch.Tensor, torch.Tensor], b), n_in, teacher_forcing=1.0)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    def decode(f: Any) -> None:
        f.eval()
        with torch.no_grad():
            greedy_decode(f, batches[0][0], 49, n_in, stop_at_eos=False)

    for f in methods.values():  # warm-up
        f(pack(batches[0][0], batches[0][1][:, :-1], n_in), src_len=batches[0][0].shape[1])
    bar = common_progress(total=repeats * 2 * len(methods), desc="bench scan", enabled=show_progress, unit="run")
    calls: list[Callable[[], None]] = []
    for f in methods.values():  # per method: training steps, then decoding
        calls += [functools.partial(train_steps, f), functools.partial(decode, f)]
    wall, _ = interleaved_times(calls, repeats, dev, after_call=lambda i: bar.update())
    bar.close()
    rows: list[dict[str, Any]] = []
    for k, (name, f) in enumerate(methods.items()):
        tr = statistics.median(wall[2 * k])
        de = statistics.median(wall[2 * k + 1])
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


def format_scan_throughput(result: dict[str, Any]) -> str:
    """A markdown table of :func:`scan_throughput`'s result with the machine."""
    m = result["machine"]
    head = (
        f"SCAN-II fine-tuning throughput, {result['cell'].upper()} hidden {result['hidden']}, batch "
        f"{result['batch_size']}, {result['steps']} steps x {result['repeats']} repeats (median); "
        f"{m.get('gpu') or m.get('processor')}, {m.get('cpu_count')} cores, torch {m.get('torch')} "
        f"({m.get('torch_threads')} threads)"
    )
    return head + "\n\n" + markdown_table(result["rows"], digits=2)
