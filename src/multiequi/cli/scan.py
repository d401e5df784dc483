"""``multiequi scan``: generate SCAN / SCAN-II, run the pipeline, compile the report, and the
SCAN throughput benchmark (the ``scan`` workload of :mod:`multiequi.lab.bench`).

Registered in :data:`multiequi.cli.COMMANDS`; heavy imports stay inside :func:`run`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, cast

from ._argtypes import CHECKPOINT_HELP, checkpoint_every, int_arg

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = """\
SCAN / SCAN-II compositional generalisation with multi-equitune (Design 2 on tokens).

Without a subcommand, runs the pipeline of a preset and then the report: pretrain a seq2seq model
(bidirectional RNN/GRU/LSTM encoder, attention decoder, hidden 64, dropout 0.1, teacher forcing 0.5),
fine-tune it through Equitune over the product of the word-swap groups (SCAN-II: jump<->run,
left<->right, up<->down; 2*2*2 = 8 copies) and through MultiEquitune over the factors (2+2+2 = 6 copies),
and evaluate exact-match accuracy of the pretrained, zero-shot wrapped and fine-tuned models (and of the
control: the same fine-tuning without a wrapper) on each held-out split (jump, turn_left, turn_up, union).
Plain SCAN tasks (Add-Jump, Around-Right) use the single verb or direction group (2 copies), the
equitune setting. Model selection uses a validation split carved from the training data. Stages resume
from their checkpoints; records go to <runs>/records.jsonl.

presets:
  quick  tasks scan2, addprim_jump, template_around_right; GRU; seed 0; pretrain 3000 steps (Adam 1e-3,
         batch 64, clip 5); fine-tune 300 steps (Adam 2e-4, weight decay 1e-4); validation 500 commands;
         each test split sampled to 2000 examples (learning rates: the paper's x 10 for batches of 64).
         About 10 minutes on 2 CPU cores with --threads 1 (measured 9-10 min); the quick
         reproduction, which passes --threads 2, took 20.7 min (commit d241d1c).
  paper  SCAN-II, RNN/GRU/LSTM, seeds 0 1 2; pretrain 200k steps (Adam 1e-4, batch 32, clip 5),
         fine-tune 10k steps (Adam 2e-5, weight decay 1e-4); validation 1000 commands; full test sets.
         About a day on 2 CPU cores.
Options given on the command line override the preset.

subcommands:
  generate  write SCAN or SCAN-II files in the official 'IN: ... OUT: ...' format
  report    compile records into tables (markdown, CSV, JSON) and bar charts
  bench     fine-tuning throughput of equitune and multi-equitune on this machine (the scan workload
            of multiequi bench)
"""


_positive_int_or_all = int_arg(1, {"all": None})


def _csv(kind: type) -> Callable[[str], tuple[Any, ...]]:
    def parse(value: str) -> tuple:
        try:
            return tuple(kind(v) for v in value.split(",") if v.strip())
        except ValueError:
            msg = f"expected a comma-separated list of {kind.__name__}, got {value!r}"
            raise argparse.ArgumentTypeError(msg) from None

    parse.__name__ = f"list of {kind.__name__}"
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``multiequi scan`` (run) and its subcommands."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    g = parser.add_argument_group("run (no subcommand)")
    g.add_argument("--preset", choices=["quick", "paper"], default="quick", help="what to run (default: quick)")
    g.add_argument(
        "--tasks",
        type=_csv(str),
        default=None,
        help="comma-separated tasks: scan2 (SCAN-II, factors verb/lr/ud), addprim_jump (SCAN Add-Jump, verb), "
        "template_around_right (SCAN Around-Right, lr), addprim_turn_left (SCAN, lr) (default: the preset's)",
    )
    g.add_argument("--cells", type=_csv(str), default=None, help="comma-separated cells: rnn,gru,lstm (preset's)")
    g.add_argument("--seeds", type=_csv(int), default=None, help="comma-separated seeds, e.g. 0,1,2 (preset's)")
    g.add_argument(
        "--methods",
        type=_csv(str),
        default=None,
        help="comma-separated methods among pretrained, finetuned (the control: fine-tuned without a wrapper), "
        "equitune-zs, multi-equitune-zs, equitune, multi-equitune (-zs: wrapped without fine-tuning) (default: all)",
    )
    g.add_argument("--pretrain-steps", type=int, default=None, help="pretraining optimizer steps")
    g.add_argument("--finetune-steps", type=int, default=None, help="fine-tuning optimizer steps per method")
    g.add_argument("--batch-size", type=int, default=None, help="training batch size")
    g.add_argument("--pretrain-lr", type=float, default=None, help="pretraining Adam learning rate")
    g.add_argument("--finetune-lr", type=float, default=None, help="fine-tuning Adam learning rate")
    g.add_argument("--weight-decay", type=float, default=None, help="fine-tuning weight decay (default 1e-4)")
    g.add_argument("--teacher-forcing", type=float, default=None, help="probability of a teacher-forced batch (0.5)")
    g.add_argument("--hidden", type=int, default=None, help="hidden size (default 64)")
    g.add_argument(
        "--eval-samples",
        type=_positive_int_or_all,
        default=argparse.SUPPRESS,
        metavar="N|all",
        help="examples evaluated per test split, a fixed seeded sample ('all': the whole split)",
    )
    g.add_argument("--val-size", type=int, default=None, help="validation commands carved from the training data")
    g.add_argument(
        "--representative",
        choices=["trained", "held-out"],
        default=None,
        help="the word multi-equitune's orbit collapse keeps for each pair: 'trained' (run, right, down: seen in "
        "compositions in training; default) or 'held-out' (jump, left, up)",
    )
    g.add_argument(
        "--runs",
        default=None,
        metavar="DIR",
        help="checkpoints and records.jsonl (default: runs/scan/<preset>; a run resumes from what is there)",
    )
    g.add_argument("--results", default=None, metavar="DIR", help="tables and figures (default: results/scan/<preset>)")
    g.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="read the split files from DIR (written by 'multiequi scan generate', or the official SCAN files) "
        "instead of generating them in memory",
    )
    g.add_argument("--json", default=None, metavar="PATH", help="also write the results table as JSON to PATH")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    g.add_argument("--checkpoint-every", type=checkpoint_every, default=None, metavar="N|Ts|Tm", help=CHECKPOINT_HELP)
    g.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")

    sub = parser.add_subparsers(dest="scan_command", metavar="SUBCOMMAND")
    gen = sub.add_parser(
        "generate",
        help="write SCAN or SCAN-II files in the official 'IN: ... OUT: ...' format",
        description="Write DIR/tasks.txt (every command once), one file per split and manifest.json (counts, "
        "SHA-256, vocabularies). SCAN: tasks_{train,test}_addprim_jump.txt, ..._addprim_turn_left.txt, "
        "..._template_around_right.txt. SCAN-II: tasks_train.txt, tasks_test_{jump,turn_left,turn_up,union}.txt.",
    )
    gen.add_argument("--dataset", choices=["scan", "scan2"], required=True, help="SCAN or SCAN-II (with up/down)")
    gen.add_argument("--out", dest="gen_out", required=True, metavar="DIR", help="folder for the files")
    gen.add_argument("--seed", dest="gen_seed", type=int, default=0, help="shuffle seed of the files (default 0)")

    rep = sub.add_parser(
        "report",
        help="compile records into tables (markdown, CSV, JSON) and bar charts",
        description="Read DIR/records.jsonl and write mean ± std tables (scan_results.md/.csv/.json, "
        "scan_cost.*), scan_report.md and one grouped bar chart per (dataset, cell): scan_<dataset>_<cell>.png.",
    )
    rep.add_argument(
        "--runs", dest="report_runs", default="runs/scan/quick", metavar="DIR", help="runs folder (default: quick's)"
    )
    rep.add_argument(
        "--out", dest="report_out", default=None, metavar="DIR", help="output folder (default: results/scan/<name>)"
    )
    rep.add_argument(
        "--json",
        dest="report_json",
        default=None,
        metavar="PATH",
        help="also write the table as a JSON list of records with dataset, cell, method, split, accuracy_mean, "
        "accuracy_std, seeds, copies",
    )
    rep.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG charts")

    ben = sub.add_parser(
        "bench",
        help="fine-tuning throughput of equitune and multi-equitune on this machine",
        description="Time training steps (forward, backward, Adam step; teacher forcing) of the plain model, "
        "Equitune over the 8-element product and MultiEquitune over the 3 factors on the same SCAN-II batches, "
        "interleaved, and report examples per second (median of repeats).",
    )
    ben.add_argument("--cell", dest="bench_cell", choices=["rnn", "gru", "lstm"], default="gru", help="cell (gru)")
    ben.add_argument("--batch-size", dest="bench_batch", type=int, default=64, help="examples per step (64)")
    ben.add_argument("--steps", dest="bench_steps", type=int, default=10, help="timed steps per repeat (10)")
    ben.add_argument("--repeats", dest="bench_repeats", type=int, default=5, help="repeats, median reported (5)")
    ben.add_argument(
        "--device", dest="bench_device", default=None, help="torch device (default: cuda if available, else cpu)"
    )
    ben.add_argument("--threads", dest="bench_threads", type=int, default=None, help="torch CPU threads")
    ben.add_argument("--json", dest="bench_json", default=None, metavar="PATH", help="also write the results as JSON")
    ben.add_argument("--no-progress", dest="bench_progress", action="store_false", help="hide the progress bar")


def _plan(args: argparse.Namespace) -> object:
    import dataclasses

    from multiequi.lab.experiments.scan import PRESETS

    plan = PRESETS[args.preset]
    overrides = {
        "pretrain_steps": args.pretrain_steps,
        "finetune_steps": args.finetune_steps,
        "batch_size": args.batch_size,
        "pretrain_lr": args.pretrain_lr,
        "finetune_lr": args.finetune_lr,
        "finetune_weight_decay": args.weight_decay,
        "teacher_forcing": args.teacher_forcing,
        "hidden": args.hidden,
        "val_size": args.val_size,
    }
    changes = {k: v for k, v in overrides.items() if v is not None}
    if hasattr(args, "eval_samples"):
        changes["eval_samples"] = args.eval_samples
    if args.representative is not None:
        changes["representative"] = args.representative
    if args.checkpoint_every is not None:
        changes["checkpoint_every"], changes["checkpoint_seconds"] = args.checkpoint_every
    settings = dataclasses.replace(plan.settings, **changes)
    return dataclasses.replace(
        plan,
        tasks=args.tasks or plan.tasks,
        cells=args.cells or plan.cells,
        seeds=args.seeds or plan.seeds,
        methods=args.methods or plan.methods,
        settings=settings,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``multiequi scan`` and its subcommands."""
    command = getattr(args, "scan_command", None)
    if command == "generate":
        from multiequi.lab.datasets.scan import write_dataset

        manifest = write_dataset(args.dataset, args.gen_out, seed=args.gen_seed)
        for name, info in cast(dict[str, dict[str, object]], manifest["files"]).items():
            print(f"{name:42s} {info['lines']:>7,d} lines  {info['distinct_commands']:>7,d} distinct commands")
        print(f"Wrote {args.gen_out}/ (manifest.json lists counts, SHA-256 and the vocabularies)")
        return 0
    if command == "report":
        from pathlib import Path

        from multiequi.lab.experiments.scan import write_report

        out = args.report_out or str(Path("results/scan") / Path(args.report_runs).name)
        records = Path(args.report_runs) / "records.jsonl"
        try:
            paths = write_report(records, out, json_path=args.report_json, plots=args.plots)
        except FileNotFoundError as err:
            raise SystemExit(f"multiequi scan report: {err}") from None
        print(paths["report"].read_text())
        print("Wrote", ", ".join(str(p) for p in paths.values()))
        return 0
    if command == "bench":
        import torch

        from multiequi.lab.bench import format_scan_throughput, scan_throughput

        if args.bench_threads:
            torch.set_num_threads(args.bench_threads)
        result = scan_throughput(
            cell=args.bench_cell,
            batch_size=args.bench_batch,
            steps=args.bench_steps,
            repeats=args.bench_repeats,
            device=args.bench_device,
            json_path=args.bench_json,
            show_progress=args.bench_progress,
        )
        print(format_scan_throughput(result))
        return 0

    import torch

    from multiequi.lab.experiments.scan import run_plan, write_report

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        plan = _plan(args)
    except ValueError as err:
        raise SystemExit(f"multiequi scan: {err}") from None
    runs = args.runs or f"runs/scan/{args.preset}"
    results = args.results or f"results/scan/{args.preset}"
    t0 = time.perf_counter()
    run_plan(plan, runs, data_dir=args.data_dir, show_progress=args.progress)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    from pathlib import Path

    from multiequi.lab.training import is_main_process, leave_process_group

    if is_main_process():  # under `accelerate launch` the main process alone reports
        paths = write_report(Path(runs) / "records.jsonl", results, json_path=args.json)
        print(paths["report"].read_text())
        print(f"Pipeline wall time this invocation: {wall / 60:.1f} min")
        print("Wrote", ", ".join(str(p) for p in paths.values()))
    leave_process_group()
    return 0
