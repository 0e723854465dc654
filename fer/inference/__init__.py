"""Serving: photos and clips in, every face's emotions out. Used by `fer predict`, the demo and MLflow serving.

images.py decodes a photo safely, detect.py finds faces (MTCNN), faces.py crops and classifies them,
video.py samples and tracks faces through a clip, weights.py loads a model (bundled, a file, MLflow) and
compiles it for serving, photo_model.py and mlflow_model.py are the model as MLflow stores and serves it.
"""
