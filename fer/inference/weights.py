"""Load a model from what users name: a weights file, a bundled model, or an MLflow model URI.

The package ships two models in fer/bundled/: `ferplus` (taught by the FER+ crowd votes, eight emotions) and
`fer2013` (FER2013's own labels, seven: the paper's benchmark). `bundled` names the production one (the name
in fer/bundled/production), `bundled:ferplus` and `bundled:fer2013` either.

Nothing here unpickles: weights files load with `weights_only=True`, MLflow
models are read in the `pt2` (torch.export) format, and a pickled MLflow model
is refused with a message.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from fer.model import MiniXception, ModelConfig, create_model

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled"  # fer/bundled/<name>/{model.pt, card.json}
BUNDLED_NAMES = ("ferplus", "fer2013")
PRODUCTION_FILE = BUNDLED_DIR / "production"  # the name of the bundled model `bundled` means


class ModelLoadError(ValueError):
    """The named model cannot be used; the message says why and what to do."""


class ExportedModel(nn.Module):
    """A torch.export program behind the nn.Module interface; always in inference mode."""

    def __init__(self, program_module: nn.Module):
        super().__init__()
        self.program = program_module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x.contiguous())

    def train(self, mode: bool = True):  # the exported graph is frozen in eval mode
        self.training = False
        return self


def save_weights(model: torch.nn.Module, path: Path, card: dict | None = None) -> Path:
    """The product's own weights format: config + state dict + model card, loadable with weights_only=True."""
    cfg = model.cfg.to_dict() if hasattr(model, "cfg") else {}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save({"format": "fer-weights-v1", "config": cfg, "state_dict": state, "card": card or {}}, path)
    return path


def bundled_name(spec: str = "bundled") -> str:
    """'bundled' -> the production bundle's name; 'bundled:NAME' -> NAME. ModelLoadError for an unknown one."""
    if spec == "bundled":
        name = PRODUCTION_FILE.read_text().strip() if PRODUCTION_FILE.exists() else ""
        if name not in BUNDLED_NAMES:
            raise ModelLoadError(
                f"{PRODUCTION_FILE} names no bundled model ({name!r}); expected one of {BUNDLED_NAMES}"
            )
        return name
    name = spec.removeprefix("bundled:")
    if not spec.startswith("bundled:") or name not in BUNDLED_NAMES:
        raise ModelLoadError(
            f"{spec!r}: no such bundled model; expected bundled, " + ", ".join(f"bundled:{n}" for n in BUNDLED_NAMES)
        )
    return name


def bundled_path(spec: str = "bundled") -> Path:
    """The weights file of a bundled model (see bundled_name)."""
    return BUNDLED_DIR / bundled_name(spec) / "model.pt"


def bundled_card(spec: str = "bundled") -> dict:
    path = bundled_path(spec).with_name("card.json")
    return json.loads(path.read_text()) if path.exists() else {}


def load_weights(path: str | Path) -> tuple[nn.Module, dict]:
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such weights file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling refusal or corrupt file
        raise ModelLoadError(f"{path}: not a weights file this product can load safely ({e.__class__.__name__})") from e
    if isinstance(obj, dict) and obj.get("format") == "fer-weights-v1":
        cfg, state, card = obj["config"], obj["state_dict"], obj.get("card", {})
    elif isinstance(obj, dict) and "best_model" in obj and "config" in obj:  # a training checkpoint
        cfg, card = obj["config"]["model"], {"recipe": obj["config"].get("recipe"), "config": obj["config"]}
        state = obj["best_model"] or obj["model"]
    else:
        raise ModelLoadError(f"{path}: unknown weights layout; expected a file written by `fer train`")
    model = create_model(ModelConfig.from_dict(cfg))
    model.load_state_dict(state)
    return model.eval(), card


def load_mlflow(uri: str) -> tuple[nn.Module, dict]:
    import mlflow

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as e:  # noqa: BLE001 - MLflow raises many kinds for a missing model
        raise ModelLoadError(f"cannot fetch {uri} from MLflow ({mlflow.get_tracking_uri()}): {e}") from e
    pt2 = local / "data" / "model.pt2"
    if not pt2.exists():  # a photo model (fer/photo_model.py) carries the classifier as its artifact
        pt2 = local / "artifacts" / "classifier" / "data" / "model.pt2"
    if not pt2.exists():
        raise ModelLoadError(
            f"{uri} is not stored in the pt2 (torch.export) format; pickled models are refused. "
            "Log it again with `python -m fer train` or mlflow.pytorch.log_model's default format."
        )
    program = torch.export.load(str(pt2))
    run_id = mlflow.models.Model.load(str(local / "MLmodel")).run_id  # the run that logged it (its params)
    return ExportedModel(program.module()), {"uri": uri, "run_id": run_id}


def load_model(spec: str = "bundled") -> tuple[nn.Module, dict]:
    """(model in eval mode, model card or description)."""
    if spec == "bundled" or spec.startswith("bundled:"):
        path = bundled_path(spec)
        if not path.exists():
            raise ModelLoadError(f"no bundled model {spec!r} in this installation ({path} is missing)")
        return load_weights(path)
    if spec.startswith(("models:/", "runs:/")):
        return load_mlflow(spec)
    if Path(spec).exists():
        return load_weights(spec)
    raise ModelLoadError(
        f"{spec!r}: not a file, 'bundled' (or bundled:ferplus, bundled:fer2013), or an MLflow URI such as "
        "models:/fer-emotion@production"
    )


def for_inference(model: nn.Module) -> nn.Module:
    """A TorchScript-frozen copy of a classifier (ours, or the graph of an exported pt2 model) for serving:
    BatchNorm folded into the convolutions, oneDNN layouts, 2-3× faster per face on a CPU. Same outputs.
    Anything else, or a model that cannot be traced, comes back as it is."""
    if not isinstance(model, (MiniXception, torch.fx.GraphModule)):
        return model
    if isinstance(model, MiniXception):
        model.eval()
    try:
        example = torch.rand(2, 1, 48, 48, device=next(model.parameters()).device)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape checks, which hold for 48×48 faces
            traced = torch.jit.trace(model, example).eval()  # (an exported graph has no .eval(); ours is in eval)
            fast = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            for _ in range(3):  # the profiling executor specialises on its first calls
                fast(example[:1])
        return fast
    except Exception as e:  # noqa: BLE001 - serving the eager model is always correct, only slower
        warnings.warn(f"serving the model untraced ({type(e).__name__}: {e})", stacklevel=2)
        return model
