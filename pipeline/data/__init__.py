"""The data plane: what a model is fed, shared by training, validation, evaluation and the dump.

augment.py    the one augmentation (params `augment:`): parameters drawn from a generator, applied by one function
batches.py    each epoch's plan of batches, assembled from the Zarr stores (a loader) or from resident.py's copy
resident.py   the stores held in the training device's memory when they fit
"""
