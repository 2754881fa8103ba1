"""Stages `train_teacher`, `train_student`, `train_baseline`.

loop.py       the training loop, top to bottom
teaching.py   what a model learns from: labels, the cached teacher, cached views, or the teacher online
batches.py    each epoch's plan of batches, assembled from the Zarr stores or from resident.py's in-memory copy
augment.py    the one augmentation: parameters drawn from a generator, applied by one function
losses.py, averaging.py, resume.py
"""
