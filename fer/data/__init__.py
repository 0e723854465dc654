"""Data in: FER2013 (folders or the Kaggle CSV), the FER+ crowd votes, augmentation and the one preprocessing.

fer2013.py reads and caches the faces, votes.py the crowd's votes for them, augment.py distorts training
batches, preprocess.py normalises a face the one way training and serving both use.
"""

DEFAULT_DATA = "../shared/data/fer2013"  # where train, evaluate and bundle look when --data is not given
