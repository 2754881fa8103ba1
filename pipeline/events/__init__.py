"""Long recordings: what sounded when (`cmkd detect`), from any trained model, and how well (`cmkd soundscapes`).

timeline.py     a recording of any length as per-class scores over time, streamed, windows batched across files
segments.py     scores as events: smoothing, per-class thresholds, joining, minimum length
outputs.py      the DCASE table, JSON, Audacity labels, a picture per file
scoring.py      event- and segment-based F1 (sed_eval), PSDS (sed_scores_eval), thresholds picked on validation
soundscapes.py  soundscapes with known events composed from a held-out ESC-50 fold
"""
