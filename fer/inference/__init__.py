"""Serving: photos and clips in, every face's emotions out. Used by `fer predict`, the demo and MLflow serving.

images.py decodes a photo safely, faces.py frames and classifies the faces fer/detection finds, video.py
samples and tracks faces through a clip, batch.py walks folders and analyses many photos at once into a table
of faces, weights.py loads a model (bundled, a file, MLflow) and serves it on the fastest path for the CPU,
photo_model.py and mlflow_model.py are the model as MLflow stores and serves it.
"""
