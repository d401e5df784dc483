"""CLIP's zero-shot prompt templates: 80 for ImageNet, 18 for CIFAR-100.

The templates were written by OpenAI's CLIP authors (Alec Radford, Jong Wook Kim, Chris Hallacy,
Aditya Ramesh, Gabriel Goh, Sandhini Agarwal, Girish Sastry, Amanda Askell, Pamela Mishkin, Jack
Clark, Gretchen Krueger, Ilya Sutskever: *Learning Transferable Visual Models From Natural Language
Supervision*, ICML 2021) and published in their notebook ``Prompt_Engineering_for_ImageNet.ipynb``
and in the CLIP repository's ``data/prompts.md``.

This module copies them, by a script and not by hand, from the file
``clip_benchmark/datasets/en_zeroshot_classification_templates.json`` of the ``clip_benchmark==1.6.2``
wheel on PyPI (keys ``"imagenet1k"`` and ``"cifar100"``, in their order, in the ``{c}`` form: a
template becomes a prompt with ``template.format(c=class_name)``). clip_benchmark is by Mehdi Cherti
and Romain Beaumont (its ``AUTHORS.rst``), under the MIT licence (the wheel's ``LICENSE``:
"Copyright (c) 2022, Mehdi Cherti"; its metadata: "License: MIT license").

Do not edit by hand: ``tests/integrations/test_zeroshot_clip.py`` checks a SHA-256 of each set
computed from the wheel's file.
"""

from __future__ import annotations

__all__ = ["CIFAR100_TEMPLATES", "IMAGENET_TEMPLATES", "TEMPLATES"]

#: The 80 ImageNet templates of CLIP's prompt ensemble (clip_benchmark's ``"imagenet1k"``).
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {c}.",
    "a photo of many {c}.",
    "a sculpture of a {c}.",
    "a photo of the hard to see {c}.",
    "a low resolution photo of the {c}.",
    "a rendering of a {c}.",
    "graffiti of a {c}.",
    "a bad photo of the {c}.",
    "a cropped photo of the {c}.",
    "a tattoo of a {c}.",
    "the embroidered {c}.",
    "a photo of a hard to see {c}.",
    "a bright photo of a {c}.",
    "a photo of a clean {c}.",
    "a photo of a dirty {c}.",
    "a dark photo of the {c}.",
    "a drawing of a {c}.",
    "a photo of my {c}.",
    "the plastic {c}.",
    "a photo of the cool {c}.",
    "a close-up photo of a {c}.",
    "a black and white photo of the {c}.",
    "a painting of the {c}.",
    "a painting of a {c}.",
    "a pixelated photo of the {c}.",
    "a sculpture of the {c}.",
    "a bright photo of the {c}.",
    "a cropped photo of a {c}.",
    "a plastic {c}.",
    "a photo of the dirty {c}.",
    "a jpeg corrupted photo of a {c}.",
    "a blurry photo of the {c}.",
    "a photo of the {c}.",
    "a good photo of the {c}.",
    "a rendering of the {c}.",
    "a {c} in a video game.",
    "a photo of one {c}.",
    "a doodle of a {c}.",
    "a close-up photo of the {c}.",
    "a photo of a {c}.",
    "the origami {c}.",
    "the {c} in a video game.",
    "a sketch of a {c}.",
    "a doodle of the {c}.",
    "a origami {c}.",
    "a low resolution photo of a {c}.",
    "the toy {c}.",
    "a rendition of the {c}.",
    "a photo of the clean {c}.",
    "a photo of a large {c}.",
    "a rendition of a {c}.",
    "a photo of a nice {c}.",
    "a photo of a weird {c}.",
    "a blurry photo of a {c}.",
    "a cartoon {c}.",
    "art of a {c}.",
    "a sketch of the {c}.",
    "a embroidered {c}.",
    "a pixelated photo of a {c}.",
    "itap of the {c}.",
    "a jpeg corrupted photo of the {c}.",
    "a good photo of a {c}.",
    "a plushie {c}.",
    "a photo of the nice {c}.",
    "a photo of the small {c}.",
    "a photo of the weird {c}.",
    "the cartoon {c}.",
    "art of the {c}.",
    "a drawing of the {c}.",
    "a photo of the large {c}.",
    "a black and white photo of a {c}.",
    "the plushie {c}.",
    "a dark photo of a {c}.",
    "itap of a {c}.",
    "graffiti of the {c}.",
    "a toy {c}.",
    "itap of my {c}.",
    "a photo of a cool {c}.",
    "a photo of a small {c}.",
    "a tattoo of the {c}.",
)

#: The 18 CIFAR-100 templates of CLIP's prompt ensemble (clip_benchmark's ``"cifar100"``).
CIFAR100_TEMPLATES: tuple[str, ...] = (
    "a photo of a {c}.",
    "a blurry photo of a {c}.",
    "a black and white photo of a {c}.",
    "a low contrast photo of a {c}.",
    "a high contrast photo of a {c}.",
    "a bad photo of a {c}.",
    "a good photo of a {c}.",
    "a photo of a small {c}.",
    "a photo of a big {c}.",
    "a photo of the {c}.",
    "a blurry photo of the {c}.",
    "a black and white photo of the {c}.",
    "a low contrast photo of the {c}.",
    "a high contrast photo of the {c}.",
    "a bad photo of the {c}.",
    "a good photo of the {c}.",
    "a photo of the small {c}.",
    "a photo of the big {c}.",
)

#: The shipped template sets by name, as ``ZeroShotCLIP(..., templates="imagenet")`` takes them.
TEMPLATES: dict[str, tuple[str, ...]] = {"imagenet": IMAGENET_TEMPLATES, "cifar100": CIFAR100_TEMPLATES}
