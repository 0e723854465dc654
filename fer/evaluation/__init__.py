"""How good a model is: accuracy, confusion, calibration (metrics.py) and the temperature that makes its
probabilities honest (calibration.py). Used by `fer train`, `fer bundle` and `fer evaluate`.
"""
