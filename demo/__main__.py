"""Serve the demo: python -m demo [--host 127.0.0.1] [--port 7860] [--poll 5]

Defaults come from GRADIO_SERVER_NAME, GRADIO_SERVER_PORT (or PORT, as a PaaS
sets it) and FER_POLL_SECONDS. The registry is the MLflow tracking store of
MLFLOW_TRACKING_URI (else `sqlite:///mlflow.db` here); an empty one gets the
bundled model as version 1 in production. Pickled models are refused.
"""

from __future__ import annotations

import os

# Before anything imports MLflow: no model is ever unpickled by this process.
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the product phones home to no one

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402


def _env_port() -> int:
    for var in ("GRADIO_SERVER_PORT", "PORT"):
        value = os.environ.get(var, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                raise SystemExit(f"error: {var}={value!r} is not a port number") from None
    return 7860


def get_args_parser() -> argparse.ArgumentParser:
    from demo.serving import poll_seconds_from_env

    p = argparse.ArgumentParser(
        prog="python -m demo",
        description="Serve the facial emotion recognition demo from the MLflow Model Registry.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        help="interface to listen on (GRADIO_SERVER_NAME); 0.0.0.0 for every interface",
    )
    p.add_argument("--port", type=int, default=_env_port(), help="TCP port (GRADIO_SERVER_PORT, else PORT)")
    p.add_argument(
        "--poll",
        type=float,
        default=poll_seconds_from_env(),
        help="seconds between two checks of the registry's production alias (FER_POLL_SECONDS); 0: only at start",
    )
    p.add_argument("--max-faces", type=int, default=20, help="faces analysed per image, the largest first")
    p.add_argument(
        "--no-bootstrap",
        action="store_true",
        help="do not register the bundled model when the registry is empty",
    )
    return p


def quick_http_failures() -> None:
    """An unreachable tracking server should cost seconds, not MLflow's minutes of retries (unless set)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    quick_http_failures()
    from fer.inference.memory import keep_freed_memory

    keep_freed_memory()  # frames reuse the heap instead of faulting pages in again: 10-20% per HD frame
    from registry import Registry, refuse_pickle

    refuse_pickle()
    from demo.app import build_app, launch
    from demo.serving import ModelServer

    server = ModelServer(Registry(), poll_seconds=args.poll, max_faces=args.max_faces, bootstrap=not args.no_bootstrap)
    server.start()
    print(f"serving {server.status()['summary']}", file=sys.stderr)
    try:
        launch(build_app(server), server, args.host, args.port)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
