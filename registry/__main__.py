"""The `registry` command line: which version of fer-emotion serves, and changing that.

python -m registry --help
python -m registry list                      # versions, aliases, stages, PublicTest accuracy
python -m registry register RUN_ID           # register the model a `fer train` run logged
python -m registry promote VERSION           # give VERSION the alias `production`
python -m registry rollback                  # back to the previous production version
python -m registry resolve                   # what serves now, and why
python -m registry bootstrap                 # empty registry: the bundled model becomes version 1, in production
python -m registry ui [--port 5000] [--host 127.0.0.1]   # the MLflow UI on the same store
python -m registry --tracking-uri http://127.0.0.1:5000 list
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

COMMANDS = ("list", "register", "promote", "rollback", "resolve", "bootstrap", "ui")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m registry",
        description="The MLflow Model Registry entry of fer-emotion: what serves (alias 'production') and its history.",
    )
    store_help = "MLflow tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this folder)"
    p.add_argument("--tracking-uri", default=None, help=store_help)
    # also accepted after the command (`list --tracking-uri URI`); SUPPRESS keeps a value given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tracking-uri", default=argparse.SUPPRESS, help=store_help)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    add = functools.partial(sub.add_parser, parents=[common])
    add("list", help="every version, newest first: aliases, stage, PublicTest accuracy, creation time")
    r = add("register", help="register the model logged by a `fer train` run, with its test accuracies")
    r.add_argument("run_id", metavar="RUN_ID", help="the MLflow run id (the UI shows it on the run's page)")
    pr = add("promote", help="give VERSION the alias 'production' (the demo serves it)")
    pr.add_argument("version", metavar="VERSION", type=int, help="a version number from `list`")
    add("rollback", help="move 'production' back to the version that held it before")
    add("resolve", help="the version that serves now, and whether by alias or legacy stage")
    add("bootstrap", help="if nothing is registered: register the bundled model and promote it")
    u = add("ui", help="start the MLflow UI on the same store")
    u.add_argument("--port", type=int, default=5000, help="TCP port (default: 5000)")
    u.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1, this machine only)")
    # MLflow's default of 4 workers costs a Python process each, for what is one person's browser
    u.add_argument("--workers", type=int, default=1, help="server processes (default: 1)")
    return p


def _table(rows: list[dict]) -> str:
    head = ("version", "aliases", "stage", "PublicTest", "created")
    body = [
        (
            str(r["version"]),
            ",".join(r["aliases"]) or "-",
            r["stage"],
            f"{r['publictest_accuracy']:.2%}" if r["publictest_accuracy"] is not None else "-",
            r["created"].strftime("%Y-%m-%d %H:%M UTC"),
        )
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in (head, *body))


def ui_command(tracking_uri: str, host: str, port: int, workers: int = 1) -> list[str]:
    from registry.core import RegistryError

    if tracking_uri.startswith(("http://", "https://")):
        scheme, _, rest = tracking_uri.partition("://")
        shown = f"{scheme}://{rest.rpartition('@')[2]}"  # never echo a user name or password
        raise RegistryError(f"the tracking store is already an MLflow server: open {shown} in a browser")
    if tracking_uri.startswith("databricks"):
        raise RegistryError("the tracking store is Databricks: open the workspace in a browser")
    store = ["--backend-store-uri", tracking_uri]  # `mlflow ui` defaults to ./mlflow.db, which may be another store
    net = ["--host", host, "--port", str(port), "--workers", str(workers)]
    return [sys.executable, "-m", "mlflow", "ui", *store, *net]


def run(args) -> int:
    from registry.core import Registry, RegistryError

    reg = Registry(args.tracking_uri)
    if args.command == "list":
        rows = reg.versions()
        if not rows:
            print(f"no versions of {reg.name} yet: train one (`python -m fer train`) or `python -m registry bootstrap`")
        else:
            print(_table(rows))
    elif args.command == "register":
        print(f"registered run {args.run_id} as {reg.name} version {reg.register(args.run_id)}")
    elif args.command == "promote":
        reg.promote(args.version)
        print(f"{reg.name} version {args.version} is now in production (alias 'production')")
    elif args.command == "rollback":
        try:
            before = reg.resolve().version
        except RegistryError:
            before = None  # rollback() raises its own, more fitting message
        after = reg.rollback()
        print(f"{reg.name}: production moved from version {before} back to version {after}")
    elif args.command == "resolve":
        res = reg.resolve()
        print(f"name     {res.name}\nversion  {res.version}\nvia      {res.via}\nuri      {res.uri}")
    elif args.command == "bootstrap":
        res = reg.bootstrap()
        if res is None:
            print(f"{reg.name} already has versions; nothing to do (`python -m registry list` shows them)")
        else:
            print(f"registered the bundled model as {res.name} version {res.version} and put it in production")
    elif args.command == "ui":
        cmd = ui_command(reg.tracking_uri, args.host, args.port, args.workers)
        print(f"MLflow UI on http://{args.host}:{args.port} for {reg.tracking_uri}", flush=True)
        # MLflow 3's job runner serves GenAI jobs this product never starts, and triples start-up time
        os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        os.execv(cmd[0], cmd)  # the UI's own signals and exit code, no Python wrapper in between
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    from mlflow.exceptions import MlflowException

    from registry.core import RegistryError

    try:
        return run(args)
    except RegistryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except MlflowException as e:  # one the registry did not expect; still one line, no traceback
        from registry.core import _mlflow_message

        print(f"error: MLflow: {_mlflow_message(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
