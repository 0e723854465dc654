"""The MLflow Model Registry as the product uses it: list, register, promote, roll back, resolve and load `fer-emotion`.

python -m registry --help
"""

__all__ = ["ALIAS", "HISTORY_TAG", "Registry", "RegistryError", "Resolved", "refuse_pickle"]


def __getattr__(name: str):
    # imported on first use so that `python -m registry --help` answers without loading MLflow
    if name in __all__:
        from registry import core

        return getattr(core, name)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
