"""The product's view of the MLflow Model Registry: which version of `fer-emotion` serves, and how it got there.

python -m registry --help        # the command line over this module (registry/__main__.py)

A version serves when it holds the alias `production` (what MLflow 3's UI edits); a registry that only
uses the deprecated stages is still honoured: the newest version in stage "Production" serves then.
Every promotion is appended to the registered-model tag `production_history` (a JSON list of versions),
which is what `rollback` walks back along.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fer import EMOTIONS, REGISTERED_MODEL
from fer.inference.mlflow_model import CARD_ARTIFACT
from fer.inference.mlflow_model import tracking_uri as default_tracking_uri

if TYPE_CHECKING:
    import torch

ALIAS = "production"
HISTORY_TAG = "production_history"
HISTORY_KEEP = 100  # tag values are capped at a few KB; a hundred promotions is plenty to roll back through
BUNDLED_EXPERIMENT = "fer-bundled"
LOGGED_MODEL_NAME = "model"  # what fer.inference.mlflow_model.log_model names the model inside a run
PICKLE_ENV = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
HOW_TO_PROMOTE = "run `python -m registry promote VERSION` or set the alias 'production' in the MLflow UI"
_GLOBALS = threading.RLock()  # MLflow's fluent API reads process-wide URIs; see Registry._pinned


class RegistryError(RuntimeError):
    """What went wrong in the user's terms, and what to do; the CLI prints it as one line."""


@dataclass
class Resolved:
    name: str
    version: int
    via: str  # "alias production" or "stage Production"
    uri: str  # models:/name/version, pinned so that a later promotion cannot change what was loaded
    tags: dict = field(default_factory=dict)


def refuse_pickle() -> None:
    """Make MLflow refuse to unpickle models in this process; serving processes (the demo) call it at start."""
    os.environ[PICKLE_ENV] = "false"


def _version_no(v) -> int:
    return int(v)  # MLflow returns versions as str from some stores and int from others


def _mlflow_message(e: MlflowException) -> str:
    # MLflow's messages can run to a stack of retries; the first line says what failed
    lines = (e.message or str(e)).strip().splitlines()
    return lines[0] if lines else e.__class__.__name__


@contextmanager
def _mlflow_errors(what: str) -> Iterator[None]:
    try:
        yield
    except MlflowException as e:
        raise RegistryError(f"{what}: {_mlflow_message(e)}") from e


class Registry:
    """The registered model `name` in the tracking store `tracking_uri` (the registry lives in the same store)."""

    def __init__(self, tracking_uri: str | None = None, name: str = REGISTERED_MODEL):
        # fer.inference.mlflow_model.tracking_uri's rule: `fer train` and this registry always look at the same store
        self._uri = tracking_uri or default_tracking_uri()
        self.name = name
        self.client = MlflowClient(tracking_uri=self._uri, registry_uri=self._uri)

    @property
    def tracking_uri(self) -> str:
        return self._uri

    def reconnect(self) -> None:
        """Close pooled database connections and build a fresh client, so a store restored or replaced in
        place is read anew. (MLflow keeps one store object per URI, with its connection pool, for the whole
        process: a new client alone would reuse the connections that failed.)"""
        for get in (lambda: self.client._tracking_client.store, lambda: self.client._get_registry_client().store):
            try:
                engine = getattr(get(), "engine", None)
            except Exception:  # noqa: BLE001 - a store that cannot even be built has no connections to close
                continue
            if engine is not None:
                engine.dispose()
        self.client = MlflowClient(tracking_uri=self._uri, registry_uri=self._uri)

    # -- reading ---------------------------------------------------------------------------------------------

    def _registered(self):
        """The RegisteredModel, or None when nothing was ever registered under the name."""
        try:
            return self.client.get_registered_model(self.name)
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise RegistryError(f"cannot read {self.name} from the registry: {_mlflow_message(e)}") from e

    def _model_versions(self) -> list:
        out, token = [], None
        with _mlflow_errors(f"cannot list the versions of {self.name}"):
            while True:
                page = self.client.search_model_versions(f"name = '{self.name}'", page_token=token)
                out.extend(page)
                token = page.token
                if not token:
                    break
        return sorted(out, key=lambda mv: _version_no(mv.version), reverse=True)

    def versions(self) -> list[dict]:
        """Every version, newest first."""
        rm = self._registered()
        if rm is None:
            return []
        # search_model_versions leaves `aliases` empty on the sqlite store; the registered model has them all
        aliases: dict[int, list[str]] = {}
        for alias, v in (rm.aliases or {}).items():
            aliases.setdefault(_version_no(v), []).append(alias)
        rows = []
        for mv in self._model_versions():
            v = _version_no(mv.version)
            acc = mv.tags.get("publictest_accuracy")
            rows.append(
                {
                    "version": v,
                    "aliases": sorted(aliases.get(v, [])),
                    "stage": mv.current_stage or "None",
                    "run_id": mv.run_id or "",
                    "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=timezone.utc),
                    "tags": dict(mv.tags),
                    "publictest_accuracy": float(acc) if acc else None,
                    "source": mv.source,
                }
            )
        return rows

    def _version(self, version: int):
        try:
            return self.client.get_model_version(self.name, str(version))
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(f"cannot read version {version} of {self.name}: {_mlflow_message(e)}") from e
            known = ", ".join(str(r["version"]) for r in reversed(self.versions())) or "none yet"
            raise RegistryError(
                f"{self.name} has no version {version} (versions: {known}; `python -m registry list` shows them)"
            ) from None

    def resolve(self) -> Resolved:
        """The version that serves: the alias `production`, else the newest version in legacy stage Production."""
        rm = self._registered()
        holder = (rm.aliases or {}).get(ALIAS) if rm is not None else None
        if holder is not None:
            mv, via = self._version(_version_no(holder)), f"alias {ALIAS}"
        else:
            known = self._model_versions() if rm is not None else []
            staged = [mv for mv in known if mv.current_stage == "Production"]
            if not staged:
                raise RegistryError(f"no production model: {HOW_TO_PROMOTE}")
            mv, via = staged[0], "stage Production"  # _model_versions is newest first
        v = _version_no(mv.version)
        return Resolved(self.name, v, via, f"models:/{self.name}/{v}", dict(mv.tags))

    def history(self) -> list[int]:
        rm = self._registered()
        raw = (rm.tags or {}).get(HISTORY_TAG) if rm is not None else None
        try:
            return [int(v) for v in json.loads(raw)] if raw else []
        except (ValueError, TypeError):  # hand-edited in the UI: start afresh rather than fail every promotion
            return []

    # -- writing ---------------------------------------------------------------------------------------------

    def _current(self) -> int | None:
        try:
            return self.resolve().version
        except RegistryError:
            return None

    def _reconciled_history(self, current: int | None) -> list[int]:
        # the alias may have been moved in the UI since our last promotion: count that holder as promoted too,
        # so that rollback returns to what actually served
        hist = self.history()
        if current is not None and (not hist or hist[-1] != current):
            hist.append(current)
        return hist

    def _set_production(self, version: int, hist: list[int]) -> None:
        # alias first: if the history write fails, the next call reconciles it from the alias
        with _mlflow_errors(f"cannot set the alias {ALIAS!r} on version {version} of {self.name}"):
            self.client.set_registered_model_alias(self.name, ALIAS, str(version))
            self.client.set_registered_model_tag(self.name, HISTORY_TAG, json.dumps(hist[-HISTORY_KEEP:]))

    def promote(self, version: int) -> None:
        """Give `version` the alias `production`."""
        version = _version_no(self._version(version).version)
        hist = self._reconciled_history(self._current())
        if not hist or hist[-1] != version:
            hist.append(version)
        self._set_production(version, hist)

    def rollback(self) -> int:
        """Move `production` back to the version that held it before the current one; returns that version."""
        current = self._current()
        if current is None:
            raise RegistryError(f"nothing is in production, so there is nothing to roll back; {HOW_TO_PROMOTE}")
        hist = self._reconciled_history(current)
        existing = {r["version"] for r in self.versions()}
        hist.pop()  # the current holder
        while hist and (hist[-1] == current or hist[-1] not in existing):  # skip repeats and deleted versions
            hist.pop()
        if not hist:
            raise RegistryError(
                f"cannot roll back: no version of {self.name} held {ALIAS!r} before version {current}; "
                "`python -m registry promote VERSION` picks one explicitly"
            )
        self._set_production(hist[-1], hist)
        return hist[-1]

    def register(self, run_id: str) -> int:
        """Register the model that `fer train` logged in run `run_id`, with the run's test accuracies as tags."""
        from fer.inference.mlflow_model import version_tags

        try:
            run = self.client.get_run(run_id)
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(f"no run {run_id!r} in this tracking store; `mlflow ui` lists the runs") from None
            raise RegistryError(f"cannot read run {run_id!r}: {_mlflow_message(e)}") from e
        for row in self.versions():
            if row["run_id"] == run_id:
                raise RegistryError(f"run {run_id} is already version {row['version']} of {self.name}")
        source, model_id = self._run_model(run)
        tags = version_tags(_card_from_run(run, self.client))
        with _mlflow_errors(f"cannot register run {run_id} as {self.name}"):
            if self._registered() is None:
                self.client.create_registered_model(self.name)
            mv = self.client.create_model_version(self.name, source, run_id=run_id, tags=tags, model_id=model_id)
        return _version_no(mv.version)

    def _run_model(self, run) -> tuple[str, str | None]:
        """(source, logged model id) of the model named "model" in `run`."""
        run_id = run.info.run_id
        with _mlflow_errors(f"cannot list the models of run {run_id}"):
            found = [
                m
                for m in self.client.search_logged_models(
                    experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
                )
                if m.name == LOGGED_MODEL_NAME
            ]
            if found:  # MLflow 3: a logged model of its own; a resumed run may hold several, the last one counts
                latest = max(found, key=lambda m: m.creation_timestamp)
                return f"models:/{latest.model_id}", latest.model_id
            # MLflow 2 logged models inside the run's artifacts
            if any(a.path == f"{LOGGED_MODEL_NAME}/MLmodel" for a in self.client.list_artifacts(run_id, "model")):
                return f"{run.info.artifact_uri}/{LOGGED_MODEL_NAME}", None
        raise RegistryError(f"run {run_id} has no model named {LOGGED_MODEL_NAME!r}; was it logged by `fer train`?")

    # -- loading and bootstrapping ----------------------------------------------------------------------------

    @contextmanager
    def _pinned(self) -> Iterator[None]:
        """Point MLflow's process-wide URIs at this store while fer code that reads them runs.

        fer.inference.weights.load_mlflow and fer.inference.mlflow_model.log_model use the fluent API, which reads
        globals;
        mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI, so both are put back exactly as found.
        A lock keeps two registries (or a demo's poll thread and its main thread) from interleaving here;
        other code that uses MLflow's globals at the same moment in another thread is not covered.
        """
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        env_keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
        with _GLOBALS:
            saved_env = {k: os.environ.get(k) for k in env_keys}
            saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
            mlflow.set_tracking_uri(self._uri)
            mlflow.set_registry_uri(self._uri)
            try:
                yield
            finally:
                mlflow.set_tracking_uri(saved[0])
                registry_utils._registry_uri = saved[1]
                for k, v in saved_env.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

    def load(self, target: Resolved | int | None = None) -> torch.nn.Module:
        """The model (torch.nn.Module, eval mode) of a Resolved, a version number, or (None) what resolves now.

        Only the pt2 (torch.export) format loads; a pickled model is refused, never unpickled.
        """
        from fer.inference.weights import ModelLoadError, load_mlflow

        if target is None:
            target = self.resolve()
        if isinstance(target, Resolved):
            uri = target.uri
        else:
            uri = f"models:/{self.name}/{_version_no(self._version(target).version)}"
        try:
            with self._pinned():
                model, _ = load_mlflow(uri)
        except ModelLoadError as e:
            raise RegistryError(str(e)) from e
        return model

    def bootstrap(self) -> Resolved | None:
        """Register the bundled models (fer/bundled/): the production one as version 1, in production, then the
        others; each also gets its bundle's name as an alias (`models:/fer-emotion@fer2013`). None when versions
        exist."""
        if self.versions():
            return None
        from fer.inference.weights import BUNDLED_NAMES, ModelLoadError, bundled_name, bundled_path

        try:
            first = bundled_name("bundled")
        except ModelLoadError as e:
            raise RegistryError(str(e)) from e
        names = [first, *(n for n in BUNDLED_NAMES if n != first and bundled_path(f"bundled:{n}").exists())]
        versions = [self._register_bundled(name) for name in names]
        self.promote(versions[0])
        return self.resolve()

    def _register_bundled(self, name: str) -> int:
        from fer.inference import mlflow_model
        from fer.inference.weights import ModelLoadError, load_model

        try:
            model, card = load_model(f"bundled:{name}")
        except ModelLoadError as e:
            raise RegistryError(str(e)) from e
        with self._pinned(), _mlflow_errors(f"cannot log the bundled model {name} to {self.name}"):
            exp = self.client.get_experiment_by_name(BUNDLED_EXPERIMENT)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(BUNDLED_EXPERIMENT)
            with mlflow.start_run(experiment_id=exp_id, run_name=f"bundled-{name}-{card.get('name', 'model')}"):
                mlflow.set_tags(_card_tags(card))
                mlflow.log_metrics(_card_metrics(card))  # the names `fer train` uses, so runs compare in the UI
                mlflow.log_dict(card, "weights/card.json")
                result = mlflow_model.log_model(model, registered_name=self.name, card=card)
            version = _version_no(result["registered_version"])
            self.client.set_model_version_tag(self.name, str(version), "origin", f"bundled:{name}")
            self.client.set_registered_model_alias(self.name, name, str(version))
        return version


def _card_from_run(run, client: MlflowClient) -> dict:
    """The part of a model card that fer.inference.mlflow_model.version_tags reads: the card `fer train` logged
    beside the weights (weights/card.json), else rebuilt from the run's metrics, params and tags."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run.info.run_id, CARD_ARTIFACT, tmp)
            card = json.loads(Path(path).read_text())
        if isinstance(card, dict):
            return card
    except (MlflowException, OSError, ValueError):  # a run without the card (logged otherwise): its metrics below
        pass
    m, params, tags = run.data.metrics, run.data.params, run.data.tags
    card: dict = {"recipe": tags.get("recipe", ""), "params": params.get("n_params", "")}
    if tags.get("classes"):
        card["labels"] = tags["classes"].split(",")
    if params.get("labels"):
        card["targets"] = params["labels"]
    if "test_acc" in m:
        per_class = {k: m[f"test_acc_{k}"] for k in EMOTIONS if f"test_acc_{k}" in m}
        card["publictest"] = {"accuracy": m["test_acc"], "per_class": per_class}
        if card.get("targets", "fer2013") != "fer2013":  # a run on the crowd's votes is scored against their majority
            card["publictest"]["against"] = "the FER+ crowd's majority"
    if "best_val_acc" in m:
        card["validation"] = {"accuracy": m["best_val_acc"]}
    calibration = {k: m[k] for k in CALIBRATION_METRICS if k in m}
    if calibration:
        card["calibration"] = calibration
    return card


# what fer.evaluation.calibration.calibrate reports and `fer train` logs as metrics
CALIBRATION_METRICS = ("temperature", "val_ece_before", "val_ece_after", "test_ece_before", "test_ece_after")


def _card_tags(card: dict) -> dict[str, str]:
    tags = {"origin": "bundled", "recipe": str(card.get("recipe", "")), "model": str(card.get("name", ""))}
    if card.get("labels"):
        tags["classes"] = ",".join(card["labels"])
    for key in ("epochs_run", "best_epoch", "finished", "selection", "data_sha256", "command", "ms_per_face"):
        if key in card:
            tags[key] = str(card[key])
    if card.get("publictest"):
        tags["publictest_accuracy"] = f"{card['publictest']['accuracy']:.4f}"
    return tags


def _card_metrics(card: dict) -> dict[str, float]:
    out = {}
    if card.get("publictest"):
        out["test_acc"] = float(card["publictest"]["accuracy"])
        out.update({f"test_acc_{k}": float(v) for k, v in card["publictest"].get("per_class", {}).items()})
    if card.get("validation"):
        out["best_val_acc"] = float(card["validation"]["accuracy"])
    calibration = card.get("calibration") or {}
    out.update({k: float(calibration[k]) for k in CALIBRATION_METRICS if k in calibration})
    return out
