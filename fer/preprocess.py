"""The one preprocessing step that training, evaluation and serving share.

Eq. (1) of the paper, applied per image: x' = (x - min) / (max - min), so each
face fills [0, 1] whatever the exposure of the photo it came from.
"""

from __future__ import annotations

import numpy as np
import torch


def normalize(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N, H, W) or (N, 1, H, W) grey levels of any dtype -> (N, 1, H, W) float32 in [0, 1].

    A flat image (max == min) has no contrast to stretch and maps to zeros.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    x = x.float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"expected grey images shaped (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-6)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, 1, H, W) float -> the same, blurred by a Gaussian of `sigma` pixels (edges repeated); sigma 0: as is."""
    if sigma <= 0:
        return x
    radius = max(1, int(3 * sigma + 0.5))
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(k**2) / (2 * sigma * sigma))
    k = k / k.sum()
    x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1))


def sharpness(images: np.ndarray | torch.Tensor) -> float:
    """Median over images of the standard deviation of the 4-neighbour Laplacian, in grey levels."""
    x = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images).float()
    if x.dim() == 4:
        x = x[:, 0]
    lap = 4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
    return float(lap.flatten(1).std(dim=1).median()) if len(x) else 0.0


def matching_blur(train_images: np.ndarray, reference_images: np.ndarray, ratio: float = 0.5) -> float:
    """The Gaussian sigma that makes `reference_images` as sharp as `train_images`; 0 when they already are.

    A model learns the sharpness of its training images. When those are much blurrier than the faces it
    will see (sharpness below `ratio` of the reference's), sharp inputs must be blurred to match before
    classification. Only the reference's pixels are used, never its labels.
    """
    target, ref = sharpness(train_images), sharpness(reference_images)
    if ref == 0 or target >= ratio * ref:
        return 0.0
    ref_t = torch.as_tensor(reference_images[:2000]).float().unsqueeze(1)
    lo, hi = 0.0, 8.0
    for _ in range(20):  # sharpness falls monotonically with sigma: bisect
        mid = (lo + hi) / 2
        if sharpness(gaussian_blur(ref_t, mid)) > target:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 2)
