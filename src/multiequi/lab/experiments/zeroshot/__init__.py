"""The paper's fourth experiment: robust zero-shot image classification under rotations and flips.

A pretrained image-text classifier (the EfficientNet-Lite0 + all-MiniLM-L6-v2 stand-in, or any
transformers CLIP) classifies test images that each get their own seeded random element of rot90,
the left-right flip or D4, plainly and through the library's wrappers (Design 2 of the paper:
multi-equitune over rot90 and flip costs 4 + 2 = 6 copies instead of equitune's 8).

- :mod:`.presets`: the settings and presets (quick, medium, paper), the methods and their copies;
- :mod:`.standin`: the offline stand-in for CLIP, built from real pretrained parts;
- :mod:`.methods`: the nine methods, the λ network, the invariance measurement;
- :mod:`.evaluation`: seeded test subsets and elements, resumable evaluation units;
- :mod:`.pipeline`: λ training, evaluation across processes, timing, the summary;
- :mod:`.report`: tables and figures rebuilt from the summary alone.

The command is ``multiequi zeroshot`` (:mod:`multiequi.cli.zeroshot`); docs/zeroshot.md shows a run.
"""
