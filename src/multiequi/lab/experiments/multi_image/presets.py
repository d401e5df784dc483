"""The two presets of ``multiequi multi-image`` (plain data, no heavy imports: ``--help`` prints them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["PRESETS", "Preset", "describe_presets"]


@dataclass(frozen=True)
class Preset:
    """One grid of runs. ``None`` tuples: every image of the split in one partition into tuples.

    Training always uses SGD (lr 0.01, momentum 0.9, weight decay 1e-3), batch 64, model
    selection on the validation split after every epoch.
    """

    ks: tuple[int, ...]
    models: tuple[str, ...]
    train_augs: tuple[str, ...]
    test_augs: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int
    train_tuples: int | None
    val_tuples: int | None
    test_tuples: int | None
    notes: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, object]:
        """The settings as plain data (for records)."""
        return asdict(self)


_ALL = ("CNN", "CNN-Fusion", "Multi-GCNN", "Multi-GCNN-Fusion", "DSS", "DeepSets")

PRESETS: dict[str, Preset] = {
    "quick": Preset(
        ks=(2,),
        models=_ALL,
        train_augs=("none", "rot"),
        test_augs=("none", "rot"),
        seeds=(0, 1),
        epochs=3,
        train_tuples=2000,
        val_tuples=500,
        test_tuples=2000,
        notes="CPU, a few minutes",
    ),
    "paper": Preset(
        ks=(2, 3, 4),
        models=_ALL,
        train_augs=("none", "rot"),
        test_augs=("none", "rot"),
        seeds=(0, 1, 2),
        epochs=100,
        train_tuples=None,
        val_tuples=None,
        test_tuples=None,
        notes="the paper's grid: 100 epochs, all tuples (hours on a CPU; use a GPU)",
    ),
}


def describe_presets() -> str:
    """One line per preset with its exact settings (shown by ``--help`` and in the docs).

    Examples
    --------
    >>> "quick:" in describe_presets()
    True
    """

    def n(v: int | None) -> str:
        return "all" if v is None else str(v)

    lines = []
    for name, p in PRESETS.items():
        lines.append(
            f"{name}: K={','.join(map(str, p.ks))}; models {', '.join(p.models)}; train aug "
            f"{'/'.join(p.train_augs)}; test aug {'/'.join(p.test_augs)}; seeds {','.join(map(str, p.seeds))}; "
            f"{p.epochs} epochs; tuples train {n(p.train_tuples)} / val {n(p.val_tuples)} / test "
            f"{n(p.test_tuples)} ({p.notes})"
        )
    return "\n".join(lines)
