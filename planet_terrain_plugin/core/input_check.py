"""A cheap check of the model input itself: noise is not terrain, whatever the network makes of it.

White or Gaussian noise gets a near-uniform softmax, and its layer3 features lie among HiRISE "other" terrain,
so neither the threshold nor the model's ``ood_score`` calls it unfamiliar: it abstained as ``low_confidence``,
as if the model had looked and been unsure. Any camera image of a surface is spatially smooth at the model's
scale: neighbouring pixels of the preprocessed input are strongly correlated. Noise resized to the input size
(an antialiased resize averages neighbours) keeps a lag-1 autocorrelation near 0.25; no HiRISE training or
validation image comes near that. An input below :data:`NOISE_AUTOCORRELATION_LIMIT` abstains as
``out_of_distribution`` (``core.calibrate.decide``).
"""
from __future__ import annotations

import numpy as np

#: The least lag-1 spatial autocorrelation (mean of rows and columns) of a model input that can be an image;
#: between the noise probes' highest and the HiRISE images' lowest (measured: see the model card).
NOISE_AUTOCORRELATION_LIMIT = 0.33


def lag1_autocorrelation(tensors: np.ndarray) -> np.ndarray:
    """(N,) lag-1 autocorrelation of the first channel of (N, C, H, W) model inputs, the mean of the horizontal
    and vertical correlation coefficients; 1 for a flat input (no variation is perfectly smooth)."""
    x = np.asarray(tensors, dtype=np.float64)[:, 0]

    def corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = a - a.mean(axis=(1, 2), keepdims=True)
        b = b - b.mean(axis=(1, 2), keepdims=True)
        norm = np.sqrt((a * a).sum(axis=(1, 2)) * (b * b).sum(axis=(1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(norm > 0, (a * b).sum(axis=(1, 2)) / np.where(norm > 0, norm, 1.0), 1.0)

    return (corr(x[:, :, :-1], x[:, :, 1:]) + corr(x[:, :-1], x[:, 1:])) / 2


def noise_like(tensors: np.ndarray) -> np.ndarray:
    """(N,) True where a model input is too rough to be an image of a surface (see the module docstring)."""
    return lag1_autocorrelation(tensors) < NOISE_AUTOCORRELATION_LIMIT
