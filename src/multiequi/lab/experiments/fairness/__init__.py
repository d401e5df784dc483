"""Intersectional fairness of language-model generation, after Sheng et al. (EMNLP 2019)."""
