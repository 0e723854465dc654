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


def sharpness(images: np.ndarray | torch.Tensor) -> float:
    """Median over images of the standard deviation of the 4-neighbour Laplacian, in grey levels."""
    x = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images).float()
    if x.dim() == 4:
        x = x[:, 0]
    lap = 4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
    return float(lap.flatten(1).std(dim=1).median()) if len(x) else 0.0
