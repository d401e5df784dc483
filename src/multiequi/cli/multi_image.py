"""``multiequi multi-image``: the multi-image classification experiment (Design 1, IS layers).

This module is imported to build the parser: it keeps data loading, training and plotting
inside :func:`run`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from multiequi.lab.experiments.multi_image.presets import PRESETS, describe_presets

from ._argtypes import CHECKPOINT_HELP, add_action_argument, checkpoint_every, int_arg

if TYPE_CHECKING:
    from multiequi.lab.datasets.images import ImageData
    from multiequi.lab.experiments.multi_image import ExperimentConfig

__all__ = ["DESCRIPTION", "add_arguments", "run"]

_MODELS = ("CNN", "CNN-Fusion", "Multi-GCNN", "Multi-GCNN-Fusion", "DSS", "DeepSets")
_AUGS = ("none", "rot", "mixed")

DESCRIPTION = (
    "Classify K-tuples of images of one class (label = the class) when every view is transformed "
    "independently: the paper's multi-image experiment with IS layers (Design 1). Default data: real "
    "Fashion-MNIST from Debian's dataset-fashion-mnist package, the stand-in for the paper's Caltech101 / "
    "15-Scene (or your own image folder). Models: a Siamese CNN (CNN), the same with each view's branch "
    "equituned over its own group (Multi-GCNN, Σ|G_i| copies instead of Π|G_i|), each with and without an "
    "IS fusion term (-Fusion), and DSS and DeepSets baselines that treat the views as a set. SGD lr 0.01, "
    "momentum 0.9, weight decay 1e-3, batch 64, through Accelerate; the epoch is chosen on the validation "
    "split. 'run' (default) trains what is not yet in --out, then writes the report; 'report' only compiles "
    "the table (markdown, CSV), the drop table, the plot and the JSON summary from --out.\n\nPresets:\n"
    + describe_presets()
)


_positive = int_arg(1)

_count = int_arg(0, {"all": 0})  # a tuple count; 0 / "all": one partition of the whole split


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``multiequi multi-image``."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_action_argument(
        p,
        "train and test every run of the grid not yet recorded in --out, then write the report",
        "only compile the tables, plot and JSON from the records in --out",
    )
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="quick",
        help="the grid (default quick; exact settings under 'Presets' above); every grid option below overrides it",
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="folder of the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist, from "
        "'apt-get install dataset-fashion-mnist')",
    )
    data.add_argument(
        "--image-folder",
        metavar="DIR",
        default=None,
        help="use your own images instead: one sub-folder per class (as Caltech101 and 15-Scene are distributed); "
        "split per class into test 20%%, validation 10%% of the rest, training the remainder",
    )
    data.add_argument(
        "--size",
        type=_positive,
        default=None,
        help="image side in pixels (default 32 for Fashion-MNIST: its 28x28 images zero-padded by 2 px; "
        "64 for an image folder, as in the paper)",
    )
    data.add_argument(
        "--channels", type=int, choices=(1, 3), default=1, help="image folder only: 1 grey (default) or 3 RGB"
    )
    data.add_argument(
        "--data-seed",
        type=int,
        default=0,
        help="seed of the splits, the tuples and the fixed validation / test transforms (default 0): every model "
        "and training seed sees the same tuples and the same test set",
    )
    grid = p.add_argument_group("grid (default: the preset's)")
    grid.add_argument("--k", type=_positive, nargs="+", metavar="K", help="images per tuple, e.g. --k 2 3 4")
    grid.add_argument(
        "--models", nargs="+", choices=_MODELS, metavar="MODEL", help=f"models among {', '.join(_MODELS)}"
    )
    grid.add_argument(
        "--train-aug",
        nargs="+",
        choices=_AUGS,
        metavar="AUG",
        help="training transforms, drawn independently per view and per example at every step: none, rot "
        "(random multiple of 90°), mixed (views 1, 3 rotated by C4, views 2, 4 flipped by C2). One grid uses "
        "one group setting: rot or mixed (Multi-GCNN and DSS use those groups)",
    )
    grid.add_argument(
        "--test-aug",
        nargs="+",
        choices=_AUGS,
        metavar="AUG",
        help="test transforms (same values), drawn once per test tuple with a fixed seed; every trained model is "
        "tested under each",
    )
    grid.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="training seeds (weights, data order, aug)")
    grid.add_argument("--epochs", type=_positive, default=None, help="training epochs (the best on validation is kept)")
    grid.add_argument(
        "--train-tuples", type=_count, default=None, metavar="N|all", help="training tuples ('all': every image once)"
    )
    grid.add_argument("--val-tuples", type=_count, default=None, metavar="N|all", help="validation tuples")
    grid.add_argument("--test-tuples", type=_count, default=None, metavar="N|all", help="test tuples")
    opt = p.add_argument_group("optimizer (the paper's values by default)")
    opt.add_argument("--batch-size", type=_positive, default=64, help="training batch (default 64)")
    opt.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default 0.01)")
    opt.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    opt.add_argument("--weight-decay", type=float, default=1e-3, help="SGD weight decay (default 1e-3)")
    io = p.add_argument_group("output and machine")
    io.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="results folder (default results/multi_image/<preset>): runs.jsonl (one JSON record per run and test "
        "setting), runs/<run_id>.json (curves), checkpoints/ (safetensors), table.md/.csv, drop.md/.csv, "
        "summary.json, multi_image_k<K>.png",
    )
    io.add_argument(
        "--json",
        metavar="PATH",
        default=None,
        help="also write the summary as a JSON list of records with the fields dataset, model, fusion, k, "
        "train_aug, test_aug, accuracy_mean, accuracy_std, seeds",
    )
    io.add_argument("--figure-dir", metavar="DIR", default=None, help="where the PNG plots go (default: --out)")
    io.add_argument(
        "--figure-prefix", default="multi_image", help="file name prefix of the plots (default multi_image)"
    )
    io.add_argument("--checkpoint-every", type=checkpoint_every, default=None, metavar="N|Ts|Tm", help=CHECKPOINT_HELP)
    io.add_argument("--rerun", action="store_true", help="retrain runs already recorded in --out (default: skip them)")
    io.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="keep the default memory format (channels-last convolutions are faster on CPUs)",
    )
    io.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="torch CPU threads (default: torch's choice; use 1 on a CPU that other jobs share)",
    )
    io.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")


def _command() -> str:
    if Path(sys.argv[0]).name == "multiequi":
        return shlex.join(["multiequi", *sys.argv[1:]])
    return ""


def run(args: argparse.Namespace) -> int:
    """Run ``multiequi multi-image``."""
    import torch

    from multiequi.lab.experiments.multi_image import ExperimentConfig, compile_report, run_grid
    from multiequi.lab.training import is_main_process, leave_process_group

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path("results") / "multi_image" / args.preset
    if args.action == "run":
        if args.image_folder and args.data_dir:
            raise SystemExit("multiequi multi-image: give --data-dir (Fashion-MNIST) or --image-folder, not both")
        overrides = {
            "ks": args.k,
            "models": args.models,
            "train_augs": args.train_aug,
            "test_augs": args.test_aug,
            "seeds": args.seeds,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "momentum": args.momentum,
            "weight_decay": args.weight_decay,
            "data_seed": args.data_seed,
            "channels_last": args.channels_last,
            "progress": args.progress,
            "command": _command(),
        }
        try:
            cfg = ExperimentConfig.from_preset(args.preset, **overrides)
            for name in ("train_tuples", "val_tuples", "test_tuples"):  # 0 / 'all' means the whole split
                v = getattr(args, name)
                if v is not None:
                    setattr(cfg, name, None if v == 0 else v)
            if args.checkpoint_every is not None:
                cfg.checkpoint_every, cfg.checkpoint_seconds = args.checkpoint_every
            cfg.validate()
            data = _load(args)
            if is_main_process():
                print(_describe(data, cfg, out))
            run_grid(data, cfg, out, rerun=args.rerun)
        except (ValueError, FileNotFoundError) as err:
            print(f"multiequi multi-image: {err}", file=sys.stderr)
            return 2
        if not is_main_process():  # under `accelerate launch` the main process alone reports
            leave_process_group()
            return 0
    try:
        report = compile_report(out, args.json, args.figure_dir, args.figure_prefix)
    except (ValueError, FileNotFoundError) as err:
        print(f"multiequi multi-image: {err}", file=sys.stderr)
        return 2
    print(report["markdown"])
    if report["grid"].get("wall_time_s") is not None:
        g = report["grid"]
        print(f"Last 'run': {g['runs_trained_now']} of {g['runs_total']} runs trained in {g['wall_time_s']:.0f} s")
    paths = report["paths"]
    written = [paths["table"]["md"], paths["table"]["csv"], paths["drop"]["md"], paths["summary"], *paths["plots"]]
    if "json" in paths:
        written.append(paths["json"])
    print("Wrote " + ", ".join(str(p) for p in written))
    leave_process_group()
    return 0


def _load(args: argparse.Namespace) -> ImageData:
    from multiequi.lab.datasets.images import load_fashion_mnist, load_image_folder

    if args.image_folder:
        return load_image_folder(args.image_folder, size=args.size or 64, channels=args.channels, seed=args.data_seed)
    return load_fashion_mnist(args.data_dir, size=args.size or 32, seed=args.data_seed)


def _describe(data: ImageData, cfg: ExperimentConfig, out: Path) -> str:
    s = data.summary()
    n = {
        k: "all" if getattr(cfg, k) is None else getattr(cfg, k) for k in ("train_tuples", "val_tuples", "test_tuples")
    }
    return (
        f"{s['dataset']}: {s['classes']} classes, images {s['image_shape']} ({s.get('preprocessing', '')}), "
        f"train/val/test images {s['train_images']}/{s['val_images']}/{s['test_images']}\n"
        f"grid: K={list(cfg.ks)}, models {list(cfg.models)}, train aug {list(cfg.train_augs)}, test aug "
        f"{list(cfg.test_augs)}, seeds {list(cfg.seeds)}, {cfg.epochs} epochs, tuples train {n['train_tuples']} / "
        f"val {n['val_tuples']} / test {n['test_tuples']}, SGD lr {cfg.lr} momentum {cfg.momentum} wd "
        f"{cfg.weight_decay}, batch {cfg.batch_size}; results in {out}"
    )
