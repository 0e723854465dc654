"""What the demo serves: the registry's production model, swapped in while requests keep flowing.

    python -c "from demo.serving import ModelServer; print(ModelServer(poll_seconds=0).start().status())"

`ModelServer.start()` bootstraps an empty registry (the bundled model becomes
version 1 with the `production` alias), resolves the production model and
builds the face pipeline around it. A daemon thread then asks the registry
every `poll_seconds` (FER_POLL_SECONDS, default 5) which version is in
production; when the alias (or a legacy stage) moves, the new version is
loaded beside the serving one and swapped in with `FacePipeline.set_model`,
so a request in flight finishes on the old model and the next one uses the
new. If the registry cannot be reached at start, the bundled model serves and
`status()` says why; the poller keeps trying.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("demo")

DEFAULT_POLL_SECONDS = 5.0
DEFAULT_MAX_FACES = 20


def poll_seconds_from_env(default: float = DEFAULT_POLL_SECONDS) -> float:
    raw = os.environ.get("FER_POLL_SECONDS", "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        log.warning("FER_POLL_SECONDS=%r is not a number of seconds; using %s", raw, default)
        return default


def public_uri(uri: str) -> str:
    """A tracking URI fit to show on a page: no user name, password, token or server folder in it.

    http(s) keeps its host and path (without credentials or query); a local store (sqlite, file, a
    database URL) shows its scheme and the store's name only: `sqlite: mlflow.db`. The full URI is logged."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    if not uri:
        return ""
    scheme = parts.scheme or "file"
    name = re.split(r"[/\\]", (parts.path or uri).rstrip("/\\"))[-1] or "(default)"
    return f"{scheme}: {name}"


# describe_error's short reasons that mean the tracking server could not be reached at all
UNREACHABLE = ("connection refused", "connection timed out", "unknown host")
_CONNECTION_NEEDLES = (
    ("connection refused", UNREACHABLE[0]),
    ("failed to establish a new connection", UNREACHABLE[0]),
    ("max retries exceeded", UNREACHABLE[0]),
    ("timed out", UNREACHABLE[1]),
    ("name or service not known", UNREACHABLE[2]),
    ("nodename nor servname", UNREACHABLE[2]),
    ("temporary failure in name resolution", UNREACHABLE[2]),
)
_PATH = re.compile(r"(?<![:/\w])(?:[/\\][\w.\-+~]+){2,}[/\\]?")  # two or more segments, not a URL


def describe_error(e: BaseException, limit: int = 160) -> str:
    """One short line about a failure, for a web page: no traceback, no server path, no credentials."""
    text = str(e) or e.__class__.__name__
    lowered = text.lower()
    for needle, short in _CONNECTION_NEEDLES:
        if needle in lowered:
            return short
    if re.search(r"\b401\b|unauthori[sz]ed", lowered):
        return "not authorised: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    if re.search(r"\b403\b|forbidden", lowered):
        return "forbidden: the tracking server refused these credentials"
    line = text.strip().splitlines()[0] if text.strip() else e.__class__.__name__
    line = re.sub(r"//[^/@\s]+@", "//", line)  # credentials inside a URL
    line = _PATH.sub(lambda m: "…/" + re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1], line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class Serving:
    """What answers requests right now; `ModelServer.status()` returns it as a dict."""

    source: str  # "registry" or "bundled"
    name: str  # registered model name, or "bundled"
    version: int | None  # registered version; None for the bundled model
    via: str  # how the version was found, e.g. "alias production"; "" for bundled
    publictest_accuracy: float | None  # the version tag `publictest_accuracy` (or the bundled card's)
    tracking_uri: str  # where the registry is, credentials removed
    registry_problem: str  # why the registry could not be asked or used lately; "" when fine
    loaded_at: float  # time.time() of the swap
    checked_at: float  # time.time() of the last registry check
    poll_seconds: float
    read_at: float | None = None  # time.time() of the last check that read the registry successfully
    publictest_against: str = "FER2013 labels"  # the version tag `publictest_against`: or "the FER+ crowd's majority"
    publictest_faces: int | None = None  # how many PublicTest faces the accuracy counts (ties and non-faces left out)

    @property
    def summary(self) -> str:
        acc = f", PublicTest accuracy {self.publictest_accuracy:.2%}" if self.publictest_accuracy is not None else ""
        if self.source == "registry":
            return f"{self.name} version {self.version} ({self.via}{acc})"
        reason = self.registry_problem or "registry not used"
        return f"bundled model ({reason}){acc}"


def _accuracy(tags: dict) -> float | None:
    try:
        return float(tags["publictest_accuracy"])
    except (KeyError, TypeError, ValueError):
        return None


def _faces(tags: dict) -> int | None:
    try:
        return int(tags["publictest_faces"])
    except (KeyError, TypeError, ValueError):
        return None


class ModelServer:
    """Holds the face pipeline and keeps its model equal to the registry's production version."""

    def __init__(
        self,
        registry=None,
        *,
        poll_seconds: float | None = None,
        max_faces: int = DEFAULT_MAX_FACES,
        bootstrap: bool = True,
        max_image_bytes: int = 20_000_000,
        max_image_pixels: int = 50_000_000,
        max_video_bytes: int = 100_000_000,
    ):
        if registry is None:
            from registry import Registry

            registry = Registry()
        self.registry = registry
        self.poll_seconds = poll_seconds_from_env() if poll_seconds is None else float(poll_seconds)
        self.max_faces = max_faces
        self.bootstrap = bootstrap
        self.max_image_bytes = max_image_bytes  # uploads above this are refused with a message
        self.max_image_pixels = max_image_pixels  # decompression-bomb guard
        self.max_video_bytes = max_video_bytes  # clips above this are refused with a message
        self.pipeline = None
        self._lock = threading.Lock()  # guards _serving and the bookkeeping below
        self._serving: Serving | None = None
        self._failed_version: int | None = None  # a version that failed to load: not retried until the alias moves
        self._needs_bootstrap = bootstrap
        self._reconnect = False  # set by a failed check: the next one starts from fresh connections
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle

    def start(self) -> ModelServer:
        """Resolve and load the production model (or the bundled one), build the pipeline, start polling."""
        if self.pipeline is not None:
            return self
        from fer.inference.faces import FacePipeline

        log.info("model registry: %s", self._tracking_uri() or "MLflow's default store")  # in full, for the log
        model, serving = self._initial_model()
        self.pipeline = FacePipeline(model, max_faces=self.max_faces)
        with self._lock:
            self._serving = serving
        log.info("serving %s", serving.summary)
        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._poll, name="registry-poll", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.poll_seconds * 2))

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what serves

    def status(self) -> dict:
        with self._lock:
            if self._serving is None:
                return {"source": "starting", "summary": "the model is loading"}
            d = asdict(self._serving)
            d["summary"] = self._serving.summary
        return d

    def status_markdown(self) -> str:
        s = self.status()
        if s["source"] == "starting":
            return "**Model:** loading…"
        checked = time.strftime("%H:%M:%S", time.localtime(s["checked_at"]))
        lines = []
        if s["source"] == "registry":
            acc = f"{s['publictest_accuracy']:.2%}" if s["publictest_accuracy"] is not None else "not recorded"
            lines.append(f"**Model:** `{s['name']}` version **{s['version']}** ({s['via']})")
            lines.append(f"**PublicTest accuracy:** {acc} (against {s.get('publictest_against') or 'FER2013 labels'})")
        else:
            acc = f"{s['publictest_accuracy']:.2%}" if s["publictest_accuracy"] is not None else "not recorded"
            lines.append(f"**Model:** bundled model ({s['registry_problem'] or 'registry not used'})")
            lines.append(f"**PublicTest accuracy:** {acc} (against {s.get('publictest_against') or 'FER2013 labels'})")
        read = (
            f"last read {time.strftime('%H:%M:%S', time.localtime(s['read_at']))}"
            if s.get("read_at")
            else "not read yet"
        )
        if s["poll_seconds"] > 0:
            lines.append(
                f"**Registry:** `{s['tracking_uri']}`, checked every {s['poll_seconds']:g} s "
                f"(last check {checked}, {read})"
            )
        else:
            lines.append(f"**Registry:** `{s['tracking_uri']}`, checked once at start ({checked}, {read})")
        if s["source"] == "registry" and s["registry_problem"]:
            lines.append(f"**Note:** {s['registry_problem']}; still serving version {s['version']}")
        return "  \n".join(lines)

    def analyze(self, image, **options):
        """FacePipeline.analyze with the serving model; options: min_face, face_mode, near."""
        if self.pipeline is None:
            raise RuntimeError("ModelServer.start() was not called")
        return self.pipeline.analyze(image, **options)

    # -- registry

    def refresh(self) -> bool:
        """Ask the registry once; swap in the production version if it moved. True when a new model serves."""
        now = time.time()
        try:
            if self._reconnect and hasattr(self.registry, "reconnect"):
                self.registry.reconnect()  # the last check failed: fresh connections, so a restored store is read
            self._reconnect = False
            if self._needs_bootstrap:
                self.registry.bootstrap()
                self._needs_bootstrap = False
            resolved = self.registry.resolve()
        except Exception as e:  # noqa: BLE001 - whatever the registry raises, the current model keeps serving
            self._reconnect = True
            log.warning("registry check failed (%s); reconnecting on the next check", e)
            self._note_problem(self._registry_reason(e), now)
            return False
        with self._lock:
            current = self._serving
            if current is not None:
                current.read_at = now
        if current is not None and current.source == "registry" and current.version == resolved.version:
            self._note_problem("", now)
            return False
        if resolved.version == self._failed_version:
            return False
        try:
            model = self.registry.load(resolved)
        except Exception as e:  # noqa: BLE001 - a version that cannot load must not stop the one that serves
            self._failed_version = resolved.version
            log.warning("version %s of %s could not be loaded: %s", resolved.version, resolved.name, e)
            self._note_problem(f"version {resolved.version} could not be loaded: {describe_error(e)}", now)
            return False
        self.pipeline.set_model(model)
        self._failed_version = None
        serving = self._serving_from(resolved, now)
        with self._lock:
            self._serving = serving
        log.info("now serving %s", serving.summary)
        return True

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the poller must outlive any one failure
                log.exception("registry poll failed")

    def _initial_model(self):
        now = time.time()
        try:
            if self.bootstrap:
                self.registry.bootstrap()
            self._needs_bootstrap = False
            resolved = self.registry.resolve()
        except Exception as e:  # noqa: BLE001 - serve the bundled model whatever went wrong
            reason = self._registry_reason(e)
            self._reconnect = True
            log.warning("registry not usable (%s); serving the bundled model", e)
        else:
            try:
                return self.registry.load(resolved), self._serving_from(resolved, now)
            except Exception as e:  # noqa: BLE001 - ditto
                self._failed_version = resolved.version
                reason = f"version {resolved.version} could not be loaded: {describe_error(e)}"
                log.warning("version %s could not be loaded (%s); serving the bundled model", resolved.version, e)
        from fer.inference.weights import load_model

        model, card = load_model("bundled")
        test = card.get("publictest") or {}
        acc = test.get("accuracy")
        return model, Serving(
            source="bundled",
            name="bundled",
            version=None,
            via="",
            publictest_accuracy=float(acc) if acc is not None else None,
            tracking_uri=public_uri(self._tracking_uri()),
            registry_problem=reason,
            loaded_at=now,
            checked_at=now,
            poll_seconds=self.poll_seconds,
            publictest_against=test.get("against", "FER2013 labels"),
            publictest_faces=test.get("n"),
        )

    def _serving_from(self, resolved, now: float) -> Serving:
        return Serving(
            source="registry",
            name=resolved.name,
            version=int(resolved.version),
            via=resolved.via,
            publictest_accuracy=_accuracy(resolved.tags or {}),
            tracking_uri=public_uri(self._tracking_uri()),
            registry_problem="",
            loaded_at=now,
            checked_at=now,
            poll_seconds=self.poll_seconds,
            read_at=now,
            publictest_against=(resolved.tags or {}).get("publictest_against", "FER2013 labels"),
            publictest_faces=_faces(resolved.tags or {}),
        )

    def _note_problem(self, problem: str, now: float) -> None:
        with self._lock:
            if self._serving is not None:
                self._serving.registry_problem = problem
                self._serving.checked_at = now

    def _registry_reason(self, e: BaseException) -> str:
        from registry import RegistryError

        reason = describe_error(e)
        if isinstance(e, RegistryError) and reason not in UNREACHABLE:
            return reason  # the registry answered, e.g. "no production model: ..."
        return f"registry unreachable: {reason}"

    def _tracking_uri(self) -> str:
        return str(getattr(self.registry, "tracking_uri", "") or os.environ.get("MLFLOW_TRACKING_URI", "") or "")


__all__ = ["ModelServer", "Serving", "describe_error", "public_uri", "poll_seconds_from_env"]
