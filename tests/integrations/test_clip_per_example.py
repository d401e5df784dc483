"""A transformers CLIP wrapped as issue 13 first tried it: the group acts on ``pixel_values``, the
output is ``logits_per_image``, the class prompts are shared (``per_example=()``), with as many
classes as images (where the size rule alone would repeat the prompts)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

from multiequi import Equitune, MultiEquitune
from multiequi.groups import Flip, Product, Rot90
from multiequi.testing import CopyCounter

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_clip() -> CLIPModel:
    torch.manual_seed(0)
    text = CLIPTextConfig(
        vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=48, eos_token_id=49, pad_token_id=49,
    )  # fmt: skip
    vision = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8
    )
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=8)
    return CLIPModel(config).eval().double()


def test_clip_zero_shot_logits_symmetrized_with_shared_prompts() -> None:
    clip = _tiny_clip()
    d4 = Product(Rot90(), Flip())
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    ids = torch.randint(0, 48, (3, 5))  # 3 class prompts for 3 images
    options = {"input_key": "pixel_values", "output_key": "logits_per_image", "per_example": (), "chunk_size": None}
    equitune, multi = Equitune(clip, d4, **options), MultiEquitune(clip, [Rot90(), Flip()], **options)
    with torch.no_grad():
        y = equitune(pixel_values=x, input_ids=ids)
        # CLIP's own zero-shot logits of every transformed batch, averaged over D4
        direct = torch.stack(
            [clip(pixel_values=d4.transform(x, torch.full((3,), g)), input_ids=ids).logits_per_image for g in range(8)]
        ).mean(0)
        torch.testing.assert_close(y, direct, rtol=0, atol=1e-12)
        z = multi(pixel_values=x, input_ids=ids)
        assert z.shape == (3, 3)
        for g in range(8):
            gx = d4.transform(x, torch.full((3,), g))
            torch.testing.assert_close(equitune(pixel_values=gx, input_ids=ids), y, rtol=0, atol=1e-12)
            torch.testing.assert_close(multi(pixel_values=gx, input_ids=ids), z, rtol=0, atol=1e-12)
        with CopyCounter(clip, key="pixel_values") as counter:
            multi(pixel_values=x, input_ids=ids)
        assert (counter.calls, counter.rows) == (1, 3 * 6)  # 4 + 2 copies of each image, not 8, in one call
