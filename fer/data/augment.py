"""Batched augmentation of Table 3 (plus the brightness jitter of §3(1)), on tensors.

The same code runs on CPU and GPU, for a whole batch at once: with two cores,
per-image work in loader processes would starve the model. Randomness comes
from an explicit `torch.Generator` on the CPU, so a run is reproducible and
resumable whatever the device.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    rotation: float = 10.0  # max rotation in degrees, uniform in [-r, r]
    shift: float = 0.1  # max horizontal and vertical shift, as a fraction of the side
    zoom: float = 0.1  # scale drawn per axis from [1 - z, 1 + z] (Keras `zoom_range`)
    hflip: float = 0.5  # probability of a horizontal flip
    brightness: float = 0.2  # grey levels multiplied by a factor in [1 - b, 1 + b], then clipped to [0, 1]
    erase: float = 0.0  # random erasing: probability that a rectangle (2-33% of the face, aspect 0.3-3.3) becomes noise

    def to_dict(self) -> dict:
        return asdict(self)


def _uniform(n: int, r: float, g: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=g) * 2 - 1) * r


def augment(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """x: (N, C, H, W) in [0, 1] -> the same shape, randomly transformed per sample.

    Borders are filled by repeating the edge (Keras' default 'nearest' fill).
    """
    n = x.shape[0]
    angle = _uniform(n, math.radians(cfg.rotation), g)
    tx, ty = _uniform(n, 2 * cfg.shift, g), _uniform(n, 2 * cfg.shift, g)  # [-1, 1] grid units
    zx, zy = 1 + _uniform(n, cfg.zoom, g), 1 + _uniform(n, cfg.zoom, g)
    flip = torch.where(torch.rand(n, generator=g) < cfg.hflip, -1.0, 1.0)
    bright = 1 + _uniform(n, cfg.brightness, g)

    # output pixel -> input pixel: rotate, then scale per axis (a flip is a negative x scale), then shift
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [
            torch.stack([cos * zx * flip, -sin * zy, tx], dim=1),
            torch.stack([sin * zx * flip, cos * zy, ty], dim=1),
        ],
        dim=1,
    ).to(device=x.device, dtype=x.dtype)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out * bright.to(device=x.device, dtype=x.dtype).view(n, 1, 1, 1)
    out = out.clamp_(0.0, 1.0)
    if cfg.erase > 0:  # drawn only when on, so runs without it keep their random stream (and `--resume`)
        out = _erase(out, cfg.erase, g)
    return out


def _erase(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Random erasing (Zhong et al., 2020): with probability p, one rectangle of each face, its area a uniform
    2-33% of the face and its aspect ratio log-uniform in [0.3, 3.3], is replaced by uniform noise."""
    n, _, h, w = x.shape
    area = (0.02 + torch.rand(n, generator=g) * 0.31) * h * w
    aspect = torch.exp((torch.rand(n, generator=g) * 2 - 1) * math.log(3.3))
    eh = (area * aspect).sqrt().round().clamp(1, h)
    ew = (area / aspect).sqrt().round().clamp(1, w)
    top = (torch.rand(n, generator=g) * (h - eh + 1)).floor()
    left = (torch.rand(n, generator=g) * (w - ew + 1)).floor()
    on = torch.rand(n, generator=g) < p
    noise = torch.rand(x.shape, generator=g)
    rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + ew).view(n, 1, 1))
        & on.view(n, 1, 1)
    )  # (N, H, W)
    mask = inside.unsqueeze(1).to(x.device)
    return torch.where(mask, noise.to(device=x.device, dtype=x.dtype), x)
