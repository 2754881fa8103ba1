"""Stages `train@<arch>` (and its cross-fit part teachers) and `train_student@<direction>`: one training loop.

loop.py       the training loop, top to bottom
jobs.py       what a stage trains: an architecture on labels, a direction's student, a cross-fit part teacher
teaching.py   what a model learns from: labels, the cached teacher, cached views, or the teacher online
selection.py  which weights are kept: the last epoch's, the best, or the last epochs' averaged or ensembled
resume.py     the state an interrupted training resumes from
cross_fit.py  cross-fitted teacher predictions: the part teachers' clips and their targets
adopt.py      a ready teacher used as is instead of trained
"""
