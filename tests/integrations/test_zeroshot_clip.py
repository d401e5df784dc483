"""``multiequi.hf.ZeroShotCLIP``: CLIP's zero-shot classifier with prompt ensembling, checked against
CLIP's own ``logits_per_image`` and an explicit loop, wrapped for D4 invariance, on a tiny random
CLIP with a hand-written character-level tokenizer (offline)."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

pytest.importorskip("transformers")

import transformers
from transformers import AutoTokenizer, CLIPModel, CLIPTokenizer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from conftest import save_tiny_clip
from multiequi import Equitune, MultiEquitune
from multiequi.groups import Flip, Product, Rot90
from multiequi.hf import CIFAR100_TEMPLATES, IMAGENET_TEMPLATES, TEMPLATES, ZeroShotCLIP
from multiequi.hf._clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, _projected_features
from multiequi.testing import CopyCounter

pytestmark = pytest.mark.usefixtures("one_thread")

#: sha256 of "\n".join(templates), computed from clip_benchmark==1.6.2's
#: clip_benchmark/datasets/en_zeroshot_classification_templates.json (keys "imagenet1k", "cifar100")
#: when _templates.py was generated from it.
IMAGENET_SHA256 = "c078f4d4ced9e360a3050ace0c5abd7bed09693bceb3ed0c7a39aba61a668c5c"
CIFAR100_SHA256 = "1762a3675d3243c767ffaec93213994afc2a52d93c95182322229fce4f313b63"

SIZE = 32  # the tiny CLIP's image side
DIM = 16  # its projection dimension
NAMES = ["goldfish", "tabby cat", "school bus"]
D4 = Product(Rot90(), Flip())

#: The exactness checks (< 1e-9) run CLIP in float64. transformers 4.x (4.57, the oldest end of the
#: declared range) cannot run CLIP's text tower in float64 at all: CLIPTextTransformer.forward always
#: builds the causal mask with modeling_attn_mask_utils' AttentionMaskConverter._make_causal_mask,
#: ``torch.full((n, n), torch.finfo(torch.float64).min)`` with no dtype, i.e. in torch's default
#: dtype (float32), where the float64 minimum overflows ("value cannot be converted to type float
#: without overflow"). The causal mask is built before and regardless of the attention mask, so no
#: input ZeroShotCLIP could pass avoids it. Under 4.x the float64 text-tower runs (construction of a
#: float64 ZeroShotCLIP, CLIP's own text embeddings) therefore happen with float64 as torch's default
#: dtype (the 4.x mask is then created in float64, as the model needs); every tensor of these tests
#: names its dtype, so nothing else changes, and the checks keep their float64 tolerances at both
#: ends. transformers 5.x builds the mask in the model's dtype (masking_utils.create_causal_mask):
#: there this is a no-op.
DEFAULT_DTYPE_MASKS = int(transformers.__version__.split(".")[0]) < 5


@contextmanager
def _float64_text_tower() -> Iterator[None]:
    """Lets a float64 CLIP run its text tower under transformers 4.x (see DEFAULT_DTYPE_MASKS)."""
    if not DEFAULT_DTYPE_MASKS:
        yield
        return
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture
def float64_text() -> Iterator[None]:
    with _float64_text_tower():
        yield


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``save_pretrained`` folder: the tiny CLIP (float32 on disk) and its CLIPTokenizer."""
    out = save_tiny_clip(tmp_path_factory.mktemp("zeroshot") / "clip", size=SIZE, dim=DIM)
    tokenizer = CLIPTokenizer.from_pretrained(str(out))
    assert tokenizer.convert_ids_to_tokens(tokenizer("a cat").input_ids) == [
        "<|startoftext|>", "a</w>", "c", "a", "t</w>", "<|endoftext|>",
    ]  # fmt: skip
    return out


@pytest.fixture(scope="module")
def clip(folder: Path) -> CLIPModel:
    return CLIPModel.from_pretrained(str(folder), dtype=torch.float64).eval()


@pytest.fixture(scope="module")
def tokenizer(folder: Path):
    return AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def zs(folder: Path) -> ZeroShotCLIP:
    with _float64_text_tower():  # module-scoped: set up before the function-scoped float64_text
        return ZeroShotCLIP.from_pretrained(folder, NAMES, dtype=torch.float64)


def _images(n: int = 2, size: int = SIZE) -> Tensor:
    return torch.randn(n, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _clip_image_embeds(clip: CLIPModel, tokenizer, x: Tensor) -> Tensor:
    """CLIP's own normalized image embeddings (``CLIPOutput.image_embeds``), whatever the version."""
    ids = tokenizer(["a"], return_tensors="pt").input_ids
    with torch.no_grad():
        return clip(input_ids=ids, pixel_values=x).image_embeds


# ----------------------------------------------------------------------------- templates
@pytest.mark.parametrize(
    ("templates", "count", "sha256"),
    [(IMAGENET_TEMPLATES, 80, IMAGENET_SHA256), (CIFAR100_TEMPLATES, 18, CIFAR100_SHA256)],
    ids=["imagenet", "cifar100"],
)
def test_templates_are_clip_benchmarks_copy(templates: tuple[str, ...], count: int, sha256: str) -> None:
    assert isinstance(templates, tuple) and len(templates) == count
    assert all(t.count("{c}") == 1 for t in templates)
    assert hashlib.sha256("\n".join(templates).encode("utf-8")).hexdigest() == sha256
    assert TEMPLATES == {"imagenet": IMAGENET_TEMPLATES, "cifar100": CIFAR100_TEMPLATES}


@pytest.mark.usefixtures("float64_text")
def test_template_choices(clip: CLIPModel, tokenizer) -> None:
    assert ZeroShotCLIP(clip, tokenizer, NAMES).templates == ("a photo of a {c}.",)
    assert ZeroShotCLIP(clip, tokenizer, NAMES, "cifar100").templates is CIFAR100_TEMPLATES
    assert ZeroShotCLIP(clip, tokenizer, ["cat"], "imagenet").templates is IMAGENET_TEMPLATES
    assert ZeroShotCLIP(clip, tokenizer, NAMES, ["{c}", "art of {c}"]).templates == ("{c}", "art of {c}")


# ----------------------------------------------------------------------------- values
@pytest.mark.usefixtures("float64_text")
def test_one_template_equals_clips_logits_per_image(zs: ZeroShotCLIP, clip: CLIPModel, tokenizer) -> None:
    x = _images(4)
    prompts = [f"a photo of a {name}." for name in NAMES]
    encoded = tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        direct = clip(input_ids=encoded.input_ids, attention_mask=encoded.attention_mask, pixel_values=x)
        logits = zs(x)
    assert logits.dtype == torch.float64 and logits.shape == (4, len(NAMES))
    assert (logits - direct.logits_per_image).abs().max() < 1e-9
    assert zs.class_names == NAMES and zs.templates == ("a photo of a {c}.",)
    assert (zs.class_embeddings - direct.text_embeds).abs().max() < 1e-9
    assert zs.logit_scale is zs.model.logit_scale


@pytest.mark.usefixtures("float64_text")
def test_prompt_ensemble_equals_an_explicit_loop(clip: CLIPModel, tokenizer) -> None:
    # 3 classes x 18 templates = 54 prompts in text batches of 7 (ragged padding across batches)
    zs = ZeroShotCLIP(clip, tokenizer, NAMES, "cifar100", text_batch_size=7)
    x = _images(3)
    with torch.no_grad():
        logits = zs(x)
        image = _clip_image_embeds(clip, tokenizer, x)
        classes = []
        for name in NAMES:
            embeddings = []
            for template in CIFAR100_TEMPLATES:
                ids = tokenizer([template.format(c=name)], return_tensors="pt").input_ids  # one prompt, no padding
                text = clip(input_ids=ids, pixel_values=x[:1]).text_embeds[0]  # normalized by CLIP
                embeddings.append(text / text.norm())
            mean = torch.stack(embeddings).mean(0)
            classes.append(mean / mean.norm())
        expected = clip.logit_scale.exp() * image @ torch.stack(classes).T
    assert (zs.class_embeddings - torch.stack(classes)).abs().max() < 1e-9
    assert (logits - expected).abs().max() < 1e-9


@pytest.mark.usefixtures("float64_text")
def test_forward_never_runs_the_text_tower(folder: Path) -> None:
    model = CLIPModel.from_pretrained(str(folder), dtype=torch.float64).eval()
    calls = {"text": 0, "vision": 0}
    model.text_model.register_forward_hook(lambda *_: calls.__setitem__("text", calls["text"] + 1))
    model.vision_model.register_forward_hook(lambda *_: calls.__setitem__("vision", calls["vision"] + 1))
    zs = ZeroShotCLIP(model, AutoTokenizer.from_pretrained(str(folder)), NAMES, "cifar100", text_batch_size=20)
    assert calls == {"text": 3, "vision": 0}  # 54 prompts in batches of 20, at construction
    cached = zs.class_embeddings.clone()
    with torch.no_grad():
        zs(_images(2))
        zs(_images(5))
    assert calls == {"text": 3, "vision": 2}
    assert "class_embeddings" in dict(zs.named_buffers()) and "class_embeddings" in zs.state_dict()
    assert zs.class_embeddings.shape == (3, DIM) and torch.equal(zs.class_embeddings, cached)
    torch.testing.assert_close(zs.class_embeddings.norm(dim=-1), torch.ones(3, dtype=torch.float64))


def test_construction_keeps_the_models_mode_and_needs_no_grad(folder: Path) -> None:
    model = CLIPModel.from_pretrained(str(folder)).train()
    zs = ZeroShotCLIP(model, AutoTokenizer.from_pretrained(str(folder)), NAMES)
    assert model.training and not zs.class_embeddings.requires_grad
    assert zs.class_embeddings.dtype == torch.float32


# ----------------------------------------------------------------------------- wrappers
@pytest.mark.parametrize(
    ("wrap", "copies"),
    [(lambda m: MultiEquitune(m, [Rot90(), Flip()]), 6), (lambda m: Equitune(m, Rot90() * Flip()), 8)],
    ids=["multi-equitune", "equitune"],
)
def test_wrapped_predictions_are_d4_invariant(zs: ZeroShotCLIP, wrap, copies: int) -> None:
    wrapped = wrap(zs)
    x = _images(3)
    with torch.no_grad():
        y = wrapped(x)
        assert y.shape == (3, len(NAMES))
        plain = torch.stack([zs(D4.transform(x, torch.full((3,), g))) for g in range(8)])
        assert (plain - plain[0]).abs().max() > 1e-3  # the plain classifier is not invariant
        for g in range(8):
            gx = D4.transform(x, torch.full((3,), g))
            assert (wrapped(gx) - y).abs().max() < 1e-9
        with CopyCounter(zs) as counter:
            wrapped(x)
    assert counter.rows == 3 * copies


# ----------------------------------------------------------------------------- model kinds
class _StubCLIP(nn.Module):
    """The tiny CLIP behind transformers 4.x's (tensor) or 5.x's (ModelOutput) get_*_features."""

    def __init__(self, clip: CLIPModel, model_output: bool) -> None:
        super().__init__()
        self.clip, self.config, self.logit_scale = clip, clip.config, clip.logit_scale
        self.model_output = model_output

    def _as(self, output) -> Tensor | BaseModelOutputWithPooling:
        features = output if isinstance(output, Tensor) else output.pooler_output
        return BaseModelOutputWithPooling(pooler_output=features) if self.model_output else features

    def get_text_features(self, **kwargs):
        return self._as(self.clip.get_text_features(**kwargs))

    def get_image_features(self, **kwargs):
        return self._as(self.clip.get_image_features(**kwargs))


@pytest.mark.usefixtures("float64_text")
@pytest.mark.parametrize("model_output", [False, True], ids=["tensor-4.x", "model-output-5.x"])
def test_tensor_and_model_output_features(clip: CLIPModel, tokenizer, zs: ZeroShotCLIP, model_output: bool) -> None:
    stub = _StubCLIP(clip, model_output)
    assert isinstance(stub.get_image_features(pixel_values=_images(1)), Tensor) is not model_output
    with torch.no_grad():
        logits = ZeroShotCLIP(stub, tokenizer, NAMES)(_images(2))
        assert (logits - zs(_images(2))).abs().max() < 1e-12


def test_projected_features_helper() -> None:
    t = torch.randn(2, 4)
    assert _projected_features(t, "f") is t
    assert _projected_features(BaseModelOutputWithPooling(last_hidden_state=t[None], pooler_output=t), "f") is t
    with pytest.raises(TypeError, match=r"get_image_features returned tuple; expected a tensor"):
        _projected_features((t,), "get_image_features")


class _FakeOpenCLIP(nn.Module):
    """An open_clip-like model: encode_image, encode_text, logit_scale, text_projection (width, D)."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = nn.Sequential(nn.Conv2d(3, 4, 8, stride=8), nn.Flatten(), nn.Linear(4 * 4 * 4, DIM))
        self.visual.image_size = SIZE
        self.token_embedding = nn.Embedding(128, 24)
        self.text_projection = nn.Parameter(torch.randn(24, DIM))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, image: Tensor) -> Tensor:
        return self.visual(image)

    def encode_text(self, text: Tensor) -> Tensor:
        return torch.tanh(self.token_embedding(text)).mean(1) @ self.text_projection


def _open_clip_tokenize(texts: list[str]) -> Tensor:
    return torch.tensor([[ord(ch) % 128 for ch in text.ljust(48)[:48]] for text in texts])


def test_open_clip_like_model() -> None:
    model = _FakeOpenCLIP().double().eval()
    zs = ZeroShotCLIP(model, _open_clip_tokenize, NAMES, ["a photo of a {c}.", "art of the {c}"], text_batch_size=4)
    assert zs.kind == "open_clip" and zs.image_size == SIZE
    x = _images(2)
    with torch.no_grad():
        classes = []
        for name in NAMES:
            text = model.encode_text(_open_clip_tokenize([f"a photo of a {name}.", f"art of the {name}"]))
            mean = F.normalize(text, dim=-1).mean(0)
            classes.append(mean / mean.norm())
        expected = model.logit_scale.exp() * F.normalize(model.encode_image(x), dim=-1) @ torch.stack(classes).T
        assert (zs(x) - expected).abs().max() < 1e-12
        wrapped = MultiEquitune(zs, [Rot90(), Flip()])
        assert (wrapped(torch.rot90(x, 1, (-2, -1))) - wrapped(x)).abs().max() < 1e-9


@pytest.mark.usefixtures("float64_text")
def test_class_embeddings_instead_of_prompts(clip: CLIPModel, tokenizer) -> None:
    embeddings = torch.randn(5, DIM, dtype=torch.float64)
    zs = ZeroShotCLIP(clip, class_embeddings=embeddings)
    assert zs.class_names == [f"class {i}" for i in range(5)] and zs.templates == ()
    assert (zs.class_embeddings - F.normalize(embeddings, dim=-1)).abs().max() < 1e-15
    x = _images(2)
    with torch.no_grad():
        expected = clip.logit_scale.exp() * _clip_image_embeds(clip, tokenizer, x) @ F.normalize(embeddings, dim=-1).T
        assert (zs(x) - expected).abs().max() < 1e-9
    named = ZeroShotCLIP(clip, class_names=list("abcde"), class_embeddings=embeddings)
    assert named.class_names == list("abcde")


# ----------------------------------------------------------------------------- preprocess
def _normalize(x: Tensor, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD) -> Tensor:
    mean, std = (torch.tensor(v, dtype=x.dtype).reshape(1, 3, 1, 1) for v in (mean, std))
    return (x - mean) / std


def test_preprocess_resizes_a_square_image(zs: ZeroShotCLIP) -> None:
    x = torch.rand(2, 3, 48, 48, dtype=torch.float64)
    resized = F.interpolate(x, size=(SIZE, SIZE), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    out = zs.preprocess(x)
    assert out.shape == (2, 3, SIZE, SIZE)
    torch.testing.assert_close(out, _normalize(resized), rtol=0, atol=1e-12)


def test_preprocess_center_crops_a_non_square_image(zs: ZeroShotCLIP) -> None:
    x = torch.rand(1, 3, SIZE, 40, dtype=torch.float64)  # shorter side already S: crop only
    torch.testing.assert_close(zs.preprocess(x), _normalize(x[..., 4:36]), rtol=0, atol=1e-12)
    y = torch.rand(1, 3, 64, 48, dtype=torch.float64)  # resize to (42, 32), crop rows 5:37
    resized = F.interpolate(y, size=(42, SIZE), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    torch.testing.assert_close(zs.preprocess(y), _normalize(resized[..., 5:37, :]), rtol=0, atol=1e-12)


def test_preprocess_normalization_values(zs: ZeroShotCLIP) -> None:
    out = zs.preprocess(torch.full((1, 3, SIZE, SIZE), 0.5))
    for channel in range(3):
        expected = (0.5 - OPENAI_CLIP_MEAN[channel]) / OPENAI_CLIP_STD[channel]
        assert torch.allclose(out[0, channel], torch.tensor(expected), atol=1e-6)
    assert (zs.image_mean, zs.image_std, zs.image_size) == (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, SIZE)


def test_preprocess_settings_from_the_processor_config(folder: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "clip"
    shutil.copytree(folder, copy)
    config = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.5, 1.0], "crop_size": {"height": 24, "width": 24}}
    (copy / "preprocessor_config.json").write_text(json.dumps({**config, "size": {"shortest_edge": 24}}))
    zs = ZeroShotCLIP.from_pretrained(copy, NAMES)
    assert (zs.image_mean, zs.image_std, zs.image_size) == ((0.5,) * 3, (0.25, 0.5, 1.0), 24)
    out = zs.preprocess(torch.full((1, 3, 24, 30), 0.75))
    assert out.shape == (1, 3, 24, 24)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([1.0, 0.5, 0.25]))
    assert ZeroShotCLIP.from_pretrained(copy, NAMES, image_size=SIZE, image_std=(1, 1, 1)).image_std == (1.0,) * 3


# ----------------------------------------------------------------------------- errors
def test_error_empty_class_list(clip: CLIPModel, tokenizer) -> None:
    with pytest.raises(ValueError, match="class_names is empty"):
        ZeroShotCLIP(clip, tokenizer, [])


def test_error_duplicate_class_names(clip: CLIPModel, tokenizer) -> None:
    with pytest.raises(ValueError, match="class_names has duplicates: 'cat'"):
        ZeroShotCLIP(clip, tokenizer, ["cat", "dog", "cat"])


def test_error_class_names_a_string(clip: CLIPModel, tokenizer) -> None:
    with pytest.raises(TypeError, match="class_names must be a list of strings, got str"):
        ZeroShotCLIP(clip, tokenizer, "cat")


def test_error_template_without_placeholder(clip: CLIPModel, tokenizer) -> None:
    with pytest.raises(ValueError, match=r"template 'a photo of a \{\}\.' has no '\{c\}' placeholder"):
        ZeroShotCLIP(clip, tokenizer, NAMES, ["a photo of a {c}.", "a photo of a {}."])


def test_error_template_with_other_fields(clip: CLIPModel, tokenizer) -> None:
    with pytest.raises(ValueError, match=r"template '\{c\} in \{place\}' cannot be filled"):
        ZeroShotCLIP(clip, tokenizer, NAMES, ["{c} in {place}"])


def test_error_unknown_template_set(clip: CLIPModel, tokenizer) -> None:
    with pytest.raises(ValueError, match="unknown template set 'imagenet1k': use one of 'imagenet', 'cifar100'"):
        ZeroShotCLIP(clip, tokenizer, NAMES, "imagenet1k")


def test_error_no_tokenizer_and_no_class_embeddings(clip: CLIPModel) -> None:
    with pytest.raises(ValueError, match="needs a tokenizer and class_names"):
        ZeroShotCLIP(clip, class_names=NAMES)


def test_error_not_a_clip_model() -> None:
    with pytest.raises(TypeError, match=r"needs a CLIP model.*Linear has neither pair"):
        ZeroShotCLIP(nn.Linear(2, 2), class_embeddings=torch.randn(2, 2))


def test_error_class_embeddings_dimension(clip: CLIPModel) -> None:
    with pytest.raises(ValueError, match=r"class_embeddings has shape \(4, 15\).*have 16 dimensions"):
        ZeroShotCLIP(clip, class_embeddings=torch.randn(4, 15))


def test_error_class_embeddings_not_2d(clip: CLIPModel) -> None:
    with pytest.raises(ValueError, match=r"class_embeddings must have shape \(C, 16\) with C >= 1, got \(16,\)"):
        ZeroShotCLIP(clip, class_embeddings=torch.randn(DIM))


def test_error_class_embeddings_integer(clip: CLIPModel) -> None:
    with pytest.raises(TypeError, match="class_embeddings must be floating point"):
        ZeroShotCLIP(clip, class_embeddings=torch.ones(3, DIM, dtype=torch.long))


def test_error_class_embeddings_and_names_disagree(clip: CLIPModel) -> None:
    with pytest.raises(ValueError, match="class_embeddings has 4 rows but class_names has 3 names"):
        ZeroShotCLIP(clip, class_names=NAMES, class_embeddings=torch.randn(4, DIM))


def test_error_class_embeddings_with_a_tokenizer(clip: CLIPModel, tokenizer) -> None:
    with pytest.raises(ValueError, match="either class_embeddings or a tokenizer"):
        ZeroShotCLIP(clip, tokenizer, NAMES, class_embeddings=torch.randn(3, DIM))


def test_error_pixel_values_not_4d(zs: ZeroShotCLIP) -> None:
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(B, 3, 32, 32\).*got \(3, 32, 32\)"):
        zs(torch.randn(3, SIZE, SIZE))


def test_error_pixel_values_not_3_channels(zs: ZeroShotCLIP) -> None:
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(B, 3, 32, 32\).*got \(2, 1, 32, 32\)"):
        zs(torch.randn(2, 1, SIZE, SIZE))


def test_error_pixel_values_dtype(zs: ZeroShotCLIP) -> None:
    with pytest.raises(TypeError, match=r"pixel_values must be floating point.*got torch.uint8"):
        zs(torch.zeros(2, 3, SIZE, SIZE, dtype=torch.uint8))


def test_error_preprocess_integer_images(zs: ZeroShotCLIP) -> None:
    with pytest.raises(TypeError, match="divide 8-bit images by 255"):
        zs.preprocess(torch.zeros(1, 3, 40, 40, dtype=torch.uint8))


def test_error_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-clip"
    with pytest.raises(FileNotFoundError, match=f"no folder {missing}"):
        ZeroShotCLIP.from_pretrained(missing, NAMES)


def test_error_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=f"cannot load a CLIP model and tokenizer from the local folder '{tmp_path}'"):
        ZeroShotCLIP.from_pretrained(tmp_path, NAMES)


def test_error_transformers_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers raises ImportError
    with pytest.raises(ImportError, match=r"needs transformers: pip install 'multiequi\[hf\]'"):
        ZeroShotCLIP.from_pretrained(tmp_path, NAMES)
