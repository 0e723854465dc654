"""Training: `fer train` and `fer bundle`. Nothing here is imported by serving (fer.inference, demo).

config.py (TrainConfig, the named recipes, the flags), trainer.py (the loop, checkpoints, --resume,
distillation), dist.py (torchrun / DDP, a no-op on one process), mlflow_runs.py (a run's params, metrics,
figures and model in MLflow), runs.py (run folders read back, ensembles), bundle.py (ship a model in the package).
"""
