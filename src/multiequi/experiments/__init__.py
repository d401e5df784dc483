"""Experiments and demo assets built on top of :mod:`multiequi`."""
