"""The Mini-Xception of the paper (Fig. 1, §3), small parts first, the whole last.

    python -c "from fer.model import create_model; print(create_model('mini_xception'))"

Stem: two 3×3 convolutions. Then four residual modules, each two depthwise
separable 3×3 convolutions and a 3×3/2 max-pool, with a strided 1×1
convolution on the shortcut. A last 3×3 convolution maps to one channel per
emotion, global average pooling reduces each map to a logit. No fully
connected layer. Every convolution is followed by BatchNorm (and ReLU, except
where a sum follows, as in the reference implementation of the recipe).

`forward` returns logits; `predict_proba` applies the softmax of the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    name: str = "mini_xception"  # key in the model factory
    in_channels: int = 1  # grayscale, as FER2013 is kept
    input_size: int = 48  # square input side in pixels
    num_classes: int = 7  # the emotions of Table 1
    stem_channels: int = 8  # width of the two stem convolutions
    widths: tuple[int, ...] = field(default=(16, 32, 64, 128))  # one per residual module
    # average-pool factor applied to every input, in training and inference, before the stem: 2 turns 48×48 into
    # 24×24 (a quarter of the compute, and the detail finer than 2 px lost); 1: none
    input_pool: int = 1
    flip_tta: bool = False  # in inference, average the logits of each face and its mirror image
    tta_shift: int = 0  # in inference, also average over the face shifted this many pixels (at 48×48) 4 ways; 0: off
    # logits divided by this in inference, fitted on the validation split after training (fer.evaluation.calibration)
    # so the probabilities mean what they say; 1: as trained. The predicted emotion does not change.
    temperature: float = 1.0
    # networks of this shape side by side in one graph, each trained on its own (`fer train --seed S
    # --split-seed 0`), their logits averaged: an ensemble (`fer bundle RUN RUN ...`, `stack`); 1: one network
    members: int = 1

    @property
    def classes(self) -> tuple[str, ...]:
        """The emotions the outputs stand for, in order: the first `num_classes` of fer.EMOTIONS."""
        from fer import EMOTIONS

        if not 1 <= self.num_classes <= len(EMOTIONS):
            raise ValueError(f"num_classes {self.num_classes}: the product knows {len(EMOTIONS)} emotions")
        return EMOTIONS[: self.num_classes]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        if "widths" in d:
            d["widths"] = tuple(d["widths"])
        if d.pop("input_blur", 0.0):
            raise ValueError(
                "this model learned from a blurred copy of FER2013 (it blurs its inputs); it is stale: "
                "train a new one with `python -m fer train`"
            )
        return cls(**d)


def conv_bn(
    cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, relu: bool = True, m: int = 1
) -> nn.Sequential:
    """Convolution, BatchNorm, ReLU; `m` networks side by side (channels times m, groups of m: no mixing)."""
    layers: list[nn.Module] = [
        nn.Conv2d(m * cin, m * cout, k, stride=stride, padding=padding, bias=False, groups=m),
        nn.BatchNorm2d(m * cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SeparableConv(nn.Module):
    """Depthwise 3×3 then pointwise 1×1 (Keras `SeparableConv2D`), then BatchNorm."""

    def __init__(self, cin: int, cout: int, relu: bool = True, m: int = 1):
        super().__init__()
        self.depthwise = nn.Conv2d(m * cin, m * cin, 3, padding=1, groups=m * cin, bias=False)
        self.pointwise = nn.Conv2d(m * cin, m * cout, 1, bias=False, groups=m)
        self.bn = nn.BatchNorm2d(m * cout)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.pointwise(self.depthwise(x))))


class ResidualModule(nn.Module):
    """Two separable convolutions and a stride-2 pool, plus a strided 1×1 shortcut: halves H and W."""

    def __init__(self, cin: int, cout: int, m: int = 1):
        super().__init__()
        self.shortcut = conv_bn(cin, cout, 1, stride=2, relu=False, m=m)
        self.sep1 = SeparableConv(cin, cout, m=m)
        self.sep2 = SeparableConv(cout, cout, relu=False, m=m)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.sep2(self.sep1(x))) + self.shortcut(x)


def parse_tta(spec: str) -> tuple[bool, int]:
    """'none', 'flip', 'shift2', 'flip+shift2' -> (flip_tta, tta_shift)."""
    flip, shift = False, 0
    for part in spec.lower().split("+"):
        if part == "flip":
            flip = True
        elif part.startswith("shift") and part[5:].isdigit() and 0 < int(part[5:]) <= 8:
            shift = int(part[5:])
        elif part != "none":
            raise ValueError(f"unknown test-time augmentation {spec!r}; expected none, flip, shiftN or flip+shiftN")
    return flip, shift


def _shifts(s: int) -> tuple[tuple[int, int], ...]:
    return ((-s, 0), (s, 0), (0, -s), (0, s))


class MiniXception(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        if cfg.input_pool < 1 or cfg.input_size // cfg.input_pool < 16:
            raise ValueError(f"input_pool {cfg.input_pool} leaves {cfg.input_size // cfg.input_pool} pixels; need 16")
        if cfg.members < 1:
            raise ValueError(f"members {cfg.members}: a model needs at least one network")
        m = cfg.members  # an ensemble: m networks side by side in every layer (see `stack`)
        # 'valid' padding as in the reference: 48 -> 46 -> 44
        self.stem = nn.Sequential(
            conv_bn(cfg.in_channels, cfg.stem_channels, 3, m=m),
            conv_bn(cfg.stem_channels, cfg.stem_channels, 3, m=m),
        )
        modules, cin = [], cfg.stem_channels
        for width in cfg.widths:  # 44 -> 22 -> 11 -> 6 -> 3
            modules.append(ResidualModule(cin, width, m=m))
            cin = width
        self.modules_ = nn.Sequential(*modules)
        self.head = nn.Conv2d(m * cin, m * cfg.num_classes, 3, padding=1, groups=m)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.members > 1:
            x = x.repeat(1, self.cfg.members, 1, 1)  # each network sees the image
        return self.modules_(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(x).mean(dim=(2, 3))  # (N, m·C, h, w) -> (N, m·C): global average pooling
        if self.cfg.members > 1:
            logits = logits.unflatten(1, (self.cfg.members, -1)).mean(1)  # the networks' mean: (N, C)
        return logits

    def set_tta(self, spec: str) -> None:
        """Change the inference-time augmentation (see parse_tta); it adds no weights."""
        self.cfg.flip_tta, self.cfg.tta_shift = parse_tta(spec)

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The face, and in inference its test-time augmentations: shifted by `tta_shift` px up, down, left and
        right (edges replicated), and the mirror image of each."""
        views = [x]
        s = self.cfg.tta_shift
        if s and not self.training:
            h, w = x.shape[-2:]
            padded = F.pad(x, (s, s, s, s), mode="replicate")
            views += [padded[..., s + dy : s + dy + h, s + dx : s + dx + w] for dy, dx in _shifts(s)]
        if self.cfg.flip_tta and not self.training:
            views += [v.flip(3) for v in views]
        return views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 1, 48, 48) normalised images -> (N, 7) logits."""
        views = self.views(x)
        x = torch.cat(views) if len(views) > 1 else x  # (V·N, 1, 48, 48)
        if self.cfg.input_pool > 1:
            x = F.avg_pool2d(x, self.cfg.input_pool)  # (., 1, 48, 48) -> (., 1, 48/p, 48/p)
        logits = self.forward_head(self.forward_features(x))
        if len(views) > 1:
            logits = logits.view(len(views), -1, logits.shape[1]).mean(0)  # (V·N, 7) -> (N, 7)
        if self.cfg.temperature != 1.0 and not self.training:
            logits = logits / self.cfg.temperature
        return logits

    def stem_weights(self) -> list[nn.Parameter]:
        """The kernels the reference recipe puts an L2 penalty on."""
        return [m[0].weight for m in self.stem]

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self(x), dim=1)


_MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {}


def register_model(name: str):
    def deco(fn):
        _MODELS[name] = fn
        return fn

    return deco


@register_model("mini_xception")
def _mini_xception(cfg: ModelConfig) -> nn.Module:
    return MiniXception(cfg)


def model_names() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str | ModelConfig = "mini_xception", **overrides) -> nn.Module:
    """Build a model by name (or from a full config); unknown names list the known ones."""
    cfg = name if isinstance(name, ModelConfig) else ModelConfig(name=name, **overrides)
    if cfg.name not in _MODELS:
        raise ValueError(f"unknown model {cfg.name!r}; known models: {', '.join(model_names())}")
    return _MODELS[cfg.name](cfg)


def stack(models: list[MiniXception]) -> MiniXception:
    """An ensemble of networks of one shape, trained apart, as one network of the same depth: each layer holds
    theirs side by side (grouped convolutions, so they never mix) and the logits are their mean. Same outputs
    as averaging the networks' logits, at little more than one network's cost per face. The temperature is 1:
    fit the ensemble's own (fer.evaluation.calibration)."""
    first = models[0].cfg
    for i, model in enumerate(models[1:], 1):
        mine = replace(model.cfg, temperature=first.temperature)
        if mine != first or first.members != 1:
            raise ValueError(f"network {i} differs from network 0 ({mine} against {first}); stack needs one shape")
    out = MiniXception(replace(first, members=len(models), temperature=1.0))
    states = [m.state_dict() for m in models]
    out.load_state_dict(
        {k: v if k.endswith("num_batches_tracked") else torch.cat([s[k] for s in states]) for k, v in states[0].items()}
    )
    return out.eval()


def unstack(model: MiniXception) -> list[MiniXception]:
    """The networks of an ensemble made by `stack`, each on its own (temperature 1), in order."""
    m = model.cfg.members
    if m == 1:
        return [model]
    one = replace(model.cfg, members=1, temperature=1.0)
    out = [MiniXception(one) for _ in range(m)]
    for k, net in enumerate(out):
        net.load_state_dict(
            {
                key: v if key.endswith("num_batches_tracked") else v.chunk(m)[k].clone()
                for key, v in model.state_dict().items()
            }
        )
    return [net.eval() for net in out]


def load_grown(model: MiniXception, state: dict[str, torch.Tensor], num_classes: int) -> None:
    """Load `state`, the weights of a network of `model`'s shape with `num_classes` outputs, into `model`, which
    may have more outputs: each new output of the head starts as a copy of the last old one (neutral, for a
    FER2013 network growing FER+'s contempt), its bias 2 lower, so the grown network reads as before until trained."""
    new, m = model.cfg.num_classes, model.cfg.members
    if new < num_classes:
        raise ValueError(f"cannot shrink a head of {num_classes} emotions to {new}")
    state = dict(state)
    if new > num_classes:
        for key, is_bias in (("head.weight", False), ("head.bias", True)):
            old = state[key].unflatten(0, (m, num_classes))  # (members·C, ...) -> (members, C, ...)
            extra = old[:, -1:].repeat_interleave(new - num_classes, dim=1)
            state[key] = torch.cat([old, extra - 2.0 if is_bias else extra], dim=1).flatten(0, 1)
    model.load_state_dict(state)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
