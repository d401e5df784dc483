"""The core needs torch and numpy only: with every other third-party package made unimportable,
``import multiequi`` and each core subpackage import and work, and load none of the lab's or the
integrations' dependencies. (The import contracts in pyproject.toml check the same statically.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = textwrap.dedent(
    r"""
    import importlib, importlib.abc, importlib.metadata, re, sys
    import numpy, torch  # the core's two dependencies, and whatever they load themselves

    requires = importlib.metadata.requires("torch") or []
    torch_deps = {re.split(r"[<>=;\[ !~]", r, maxsplit=1)[0].lower().replace("-", "_") for r in requires}
    loaded = {m.split(".")[0] for m in sys.modules}
    allowed = {"multiequi", "torch", "numpy", *torch_deps, *loaded}

    class Absent(importlib.abc.MetaPathFinder):
        # what an environment with only torch and numpy installed looks like to an import
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in allowed:
                return None
            raise ModuleNotFoundError(f"No module named {name!r} (not installed here)", name=name)

    sys.meta_path.insert(0, Absent())
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("the blocker does not work: matplotlib imported")

    for name in ("multiequi", "multiequi.groups", "multiequi.symmetrize", "multiequi.multi_input", "multiequi.testing"):
        importlib.import_module(name)

    from multiequi import Equitune, MultiEquitune
    from multiequi.groups import Flip, Product, Rot90, TokenCycles
    from multiequi.testing import assert_equivariant, count_copies

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 4)).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    assert_equivariant(MultiEquitune(net, [Rot90(), Flip()]), Product(Rot90(), Flip()), x)
    assert count_copies(Equitune(net, Product(Rot90(), Flip()), chunk_size=None), net, x) == 8.0
    lm = torch.nn.Sequential(torch.nn.Embedding(20, 8), torch.nn.Linear(8, 20)).double()
    g = [TokenCycles([[1, 2]], 20), TokenCycles([[3, 4, 5]], 20)]
    assert_equivariant(MultiEquitune(lm, g, output="vocab"), Product(*g), torch.randint(0, 20, (2, 5)), "vocab")

    heavy = ["transformers", "accelerate", "matplotlib", "safetensors", "sklearn", "skimage", "PIL", "ttach"]
    present = [h for h in heavy if h in sys.modules]
    lab = sorted(m for m in sys.modules if m.startswith(("multiequi.lab", "multiequi.cli", "multiequi.models")))
    assert not present and not lab, (present, lab)
    print("core ok")
    """
)


def test_core_imports_and_runs_with_only_torch_and_numpy() -> None:
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("core ok")
