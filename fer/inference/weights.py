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
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from fer.model import MiniXception, ModelConfig, create_model, unstack

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


# -- the served path: the fastest of several equal graphs on this CPU, chosen once

SERVED_PATHS = ("onnxruntime", "torchscript", "eager")  # what `serve` chooses among (FER_SERVED_PATH forces one)
SERVED_PATH_ENV = "FER_SERVED_PATH"
SERVED_ATOL = 1e-4  # the logits every path must give, at most this far from the eager model's
_SERVED_FORMAT = "fer-served-v2"  # part of every cache key: a change to the export below makes new keys


class OnnxClassifier(nn.Module):
    """An ONNX Runtime session behind the nn.Module interface: (N, 1, 48, 48) faces -> (N, C) logits.

    Its threads are the torch threads of the process when it was made (a serving worker's one thread stays one)
    and they sleep instead of spinning between calls, so a decoding thread beside them keeps its core."""

    def __init__(self, onnx: bytes, threads: int | None = None):
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # its shape notes are not the user's business
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.training = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        faces = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: faces})[0])

    def train(self, mode: bool = True):  # a session has no training mode
        self.training = False
        return self


class _Members(nn.Module):
    """A stacked ensemble (fer.model.stack) as its networks side by side again: the mean of their logits, over
    the temperature. ONNX Runtime runs the networks' plain convolutions 15-25% faster than the grouped ones of
    the stacked graph (the bundled model, one thread, AMD EPYC); PyTorch runs the stacked one faster."""

    def __init__(self, model: MiniXception):
        super().__init__()
        self.nets = nn.ModuleList(unstack(model))
        self.temperature = model.cfg.temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.nets]).mean(0) / self.temperature


def to_onnx(model: nn.Module) -> bytes:
    """The classifier as an ONNX graph with a dynamic batch, from torch's TorchScript-based exporter (the
    torch.export-based one needs the onnxscript package and takes 20× as long for the same graph)."""
    import io

    if isinstance(model, torch.fx.GraphModule):
        source = ExportedModel(model)  # (a GraphModule refuses the exporter's train(False))
    elif isinstance(model, MiniXception) and model.cfg.members > 1:
        source = _Members(model).eval()
    else:
        source = model
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and tracer notes on 48×48 shape checks
        torch.onnx.export(
            source,
            (torch.rand(2, 1, 48, 48),),
            buffer,
            dynamo=False,
            input_names=["faces"],
            output_names=["logits"],
            dynamic_axes={"faces": {0: "n"}, "logits": {0: "n"}},
        )
    return buffer.getvalue()


def cpu_model() -> str:
    """The processor's name as the kernel gives it ('AMD EPYC', 'Intel(R) Xeon(R) Platinum 8480+'...)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _servable(model: nn.Module) -> bool:
    return isinstance(model, (MiniXception, ExportedModel, torch.fx.GraphModule))


def _model_key(model: nn.Module) -> str:
    """A digest of what the classifier computes: its weights, its configuration (test-time augmentation and the
    temperature live there, not in the weights), its graph's code for an exported one, and the torch version."""
    import hashlib

    h = hashlib.sha256(f"{_SERVED_FORMAT} torch {torch.__version__} {type(model).__name__}".encode())
    if isinstance(model, MiniXception):
        h.update(json.dumps(model.cfg.to_dict(), sort_keys=True, default=str).encode())
    graph = model.program if isinstance(model, ExportedModel) else model
    if isinstance(graph, torch.fx.GraphModule):
        h.update(graph.code.encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}".encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def served_cache() -> Path:
    """Where the ONNX graphs and the choices of `serve` are kept (FER_CACHE_DIR, default ~/.cache/fer)."""
    return Path(os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer") / "served"


def _write_atomic(path: Path, data: bytes) -> None:
    """Several serving workers may load the same model at once: each writes its own file and renames it."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _onnx_classifier(model: nn.Module, key: str) -> OnnxClassifier:
    """The ONNX Runtime path, its graph read from the cache where an earlier load exported it (exporting costs
    about a second; reading it back, milliseconds)."""
    path = served_cache() / f"{key}.onnx"
    if path.exists():
        try:
            return OnnxClassifier(path.read_bytes())
        except Exception:  # noqa: BLE001 - a damaged cache file is exported again
            pass
    onnx = to_onnx(model)
    classifier = OnnxClassifier(onnx)
    try:
        _write_atomic(path, onnx)
    except OSError:  # a read-only home: the next load exports again
        pass
    return classifier


def _build(model: nn.Module, path: str, key: str) -> nn.Module:
    if path == "onnxruntime":
        return _onnx_classifier(model, key)
    if path == "torchscript":
        fast = for_inference(model.program if isinstance(model, ExportedModel) else model)
        if isinstance(fast, torch.jit.ScriptModule):
            return fast
        raise RuntimeError("the model cannot be traced")
    return model


def _ms_per_face(paths: dict[str, nn.Module], rounds: int = 5) -> dict[str, float]:
    """Milliseconds per face of each path over a batch of one and a batch of eight (what a photo and a chunk of a
    folder send). Rounds alternate between the paths, so other load on the CPU hits them alike; a path over twice
    the best after the first round is not timed further."""
    import time

    calls = (torch.rand(1, 1, 48, 48), torch.rand(1, 1, 48, 48), torch.rand(8, 1, 48, 48))
    faces = sum(len(x) for x in calls)
    times: dict[str, list[float]] = {name: [] for name in paths}
    with torch.no_grad():
        for net in paths.values():
            for x in calls:  # warm-up: TorchScript specialises on its first calls
                net(x)
        for r in range(rounds):
            for name, net in paths.items():
                if r == 1 and times[name][0] > 2 * min(t[0] for t in times.values()):
                    continue
                if r > 1 and len(times[name]) < r:
                    continue
                t0 = time.perf_counter()
                for x in calls:
                    net(x)
                times[name].append((time.perf_counter() - t0) / faces * 1000)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def serve(model: nn.Module, path: str | None = None) -> nn.Module:
    """The classifier as served: whichever of SERVED_PATHS is fastest on this CPU, giving the eager model's logits
    (to SERVED_ATOL). `path` (or the environment's FER_SERVED_PATH) forces one; 'auto' (the default) measures
    each the first time this model is loaded on this CPU with this many threads, and keeps the choice (and the
    ONNX graph) in `served_cache()`, so later loads build only the chosen one. The returned module says which in
    `served_path`, and `ms_per_face` holds the figures it was chosen by. A model that is not a classifier of this
    product is served as it is."""
    path = path or os.environ.get(SERVED_PATH_ENV) or "auto"
    if path not in (*SERVED_PATHS, "auto"):
        raise ValueError(f"unknown served path {path!r}; expected auto or one of {', '.join(SERVED_PATHS)}")
    model.eval()
    if not _servable(model) or next(model.parameters()).device.type != "cpu":
        model.served_path, model.ms_per_face = "eager", {}
        return model
    key = _model_key(model)
    choice_file = served_cache() / f"{key}-{_machine_key()}.json"
    if path == "auto" and choice_file.exists():  # chosen on this CPU before: build that one alone
        try:
            record = json.loads(choice_file.read_text())
            # its graph was checked against the model when it was chosen, and the cache key is the model's digest
            return _label(_build(model, record["path"], key), record["path"], record["ms_per_face"])
        except Exception:  # noqa: BLE001 - an unreadable record or a path this machine lost: choose again
            pass
    check = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        expected = model(check)

    def built(name: str) -> nn.Module | None:
        try:
            net = _build(model, name, key)
        except Exception as e:  # noqa: BLE001 - a path this machine lacks (no onnxruntime) or cannot export to
            warnings.warn(f"served path {name} unavailable ({type(e).__name__}: {e})", stacklevel=3)
            return None
        if net is not model:
            with torch.no_grad():
                got = net(check)
            if got.shape != expected.shape or not torch.allclose(got.float(), expected, atol=SERVED_ATOL):
                warnings.warn(f"served path {name} gives other logits than the model; not used", stacklevel=3)
                return None
        return net

    if path != "auto":
        net = built(path)
        if net is not None:
            return _label(net, path, {})
    candidates = {name: net for name in SERVED_PATHS if (net := built(name)) is not None}
    timed = _ms_per_face(candidates)
    best = min(timed, key=timed.get)
    try:
        _write_atomic(choice_file, json.dumps({"path": best, "ms_per_face": timed, "cpu": cpu_model()}).encode())
    except OSError:
        pass
    return _label(candidates[best], best, timed)


def _machine_key() -> str:
    import hashlib

    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = "none"
    text = f"{cpu_model()} {os.cpu_count()} threads {torch.get_num_threads()} onnxruntime {ort}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _label(net: nn.Module, path: str, timed: dict[str, float]) -> nn.Module:
    net.served_path, net.ms_per_face = path, dict(timed)
    return net
