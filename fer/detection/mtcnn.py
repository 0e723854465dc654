"""MTCNN's three networks and the two torchvision operators the detector runs, without importing either package.

    python -c "from fer.detection.mtcnn import PNet; print(PNet())"

`fer predict photo.jpg` should start in a few seconds, and importing `torchvision.ops` alone took 4 s of it on an
idle AMD EPYC: torchvision's package imports its models, which import `torch._dynamo`. facenet-pytorch imports
torchvision (and `requests`) as soon as any of its modules is imported. So:

- the networks are facenet-pytorch's `PNet`, `RNet` and `ONet` (MIT licence), written out again layer for layer
  under the same names, so the weights in its wheel (`mtcnn_weights()`) load into them unchanged;
- `nms` and `roi_align` call torchvision's compiled operators (`torch.ops.torchvision.*`), registered by loading
  its extension library directly; where that library is not where torchvision keeps it, its Python functions are
  imported instead (slower to import, same results).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import torch
from torch import nn


def package_dir(name: str) -> Path:
    """An installed package's folder, found without running its __init__."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def mtcnn_weights() -> Path:
    """The folder of MTCNN's weights inside facenet-pytorch's wheel (pnet.pt, rnet.pt, onet.pt)."""
    return package_dir("facenet_pytorch") / "data"


_OPS: dict[str, object] = {}


def _torchvision_ops():
    """torch.ops.torchvision, its library loaded the way torchvision.extension loads it (or by importing it)."""
    if not _OPS:
        try:
            folder = package_dir("torchvision")
            loader = (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES)
            spec = importlib.machinery.FileFinder(str(folder), loader).find_spec("_C_stable")
            if spec is None:
                raise ImportError("no _C_stable library")
            torch.ops.load_library(spec.origin)
            _OPS["nms"], _OPS["roi_align"] = torch.ops.torchvision.nms, torch.ops.torchvision.roi_align
        except (ImportError, OSError, RuntimeError, AttributeError):
            from torchvision.ops import nms, roi_align

            _OPS["nms"] = nms
            _OPS["roi_align"] = lambda x, rois, scale, h, w, ratio, aligned: roi_align(
                x, rois, (h, w), spatial_scale=scale, sampling_ratio=ratio, aligned=aligned
            )
    return _OPS


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision.ops.nms: the indices of the boxes kept, highest score first."""
    return _torchvision_ops()["nms"](boxes, scores, iou_threshold)


def roi_align(
    x: torch.Tensor,
    rois: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """torchvision.ops.roi_align for a float tensor and (K, 5) rois [batch index, x1, y1, x2, y2]."""
    h, w = output_size
    return _torchvision_ops()["roi_align"](x, rois, spatial_scale, h, w, sampling_ratio, aligned)


class PNet(nn.Module):
    """Proposal network: fully convolutional, a 12 px window, stride 2. -> (box offsets, face probability)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))


class RNet(nn.Module):
    """Refinement network on 24×24 crops. -> (box offsets, face probability)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).contiguous()  # (N, 64, 3, 3) -> (N, 3, 3, 64): the order the weights were trained in
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))


class ONet(nn.Module):
    """Output network on 48×48 crops. -> (box offsets, five landmarks, face probability)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))
