"""The one augmentation: training batches (a seed per batch) and cached views (a seed per clip and view) draw from
the same distribution, checked on many draws, and `apply` does what the parameters say."""
import numpy as np
import pytest
import torch
from scipy import stats

from pipeline.data.augment import FIELDS, AugmentSettings, apply, as_columns, draw_batch, draw_views, view_seeds

CFG = AugmentSettings(freq_mask=6, time_mask=9, mixup=0.5, mixup_alpha=10.0, time_shift=4)
FRAMES, BINS, DRAWS = 50, 32, 12000
POOL = np.arange(100, 120)  # the training clips partners come from


@pytest.fixture(scope="module")
def draws() -> dict[str, np.ndarray]:
    rows = np.arange(DRAWS) % 7
    online = np.concatenate([as_columns(draw_batch(seed, rows[i : i + 48], CFG, FRAMES, BINS, POOL))
                             for seed, i in enumerate(range(0, DRAWS, 48))])  # the columns of FIELDS
    seeds = view_seeds(np.array([f"clip{i}" for i in range(DRAWS // 4)]), 4, seed=0).ravel()
    views = as_columns(draw_views(seeds, rows, CFG, FRAMES, BINS, POOL))
    return {"online": online, "views": views, "rows": rows}


@pytest.mark.parametrize("kind", ["online", "views"])
@pytest.mark.parametrize("column,largest", [(4, CFG.freq_mask), (6, CFG.time_mask)])
def test_mask_widths_are_uniform_over_0_to_m(draws, kind, column, largest):
    widths = draws[kind][:, column].astype(int)
    counts = np.bincount(widths, minlength=largest + 1)
    assert len(counts) == largest + 1 and counts.min() > 0  # 0 and m both occur, nothing above m
    assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("kind", ["online", "views"])
def test_masks_fit_and_start_anywhere_they_fit(draws, kind):
    d = draws[kind]
    assert (d[:, 3] + d[:, 4] <= BINS).all() and (d[:, 5] + d[:, 6] <= FRAMES).all()
    assert d[:, 3].min() == 0 and (d[:, 3] + d[:, 4]).max() == BINS


@pytest.mark.parametrize("kind", ["online", "views"])
def test_mixup_rate_weight_and_partner(draws, kind):
    d, rows = draws[kind], draws["rows"]
    mixed = d[:, 1] < 1
    assert abs(mixed.mean() - CFG.mixup) < 0.02
    assert (d[~mixed, 0] == rows[~mixed]).all() and (d[~mixed, 1] == 1).all()  # unmixed: its own partner
    partners = d[mixed, 0].astype(int)
    assert set(partners) == set(POOL)  # any training clip, never one outside the pool
    assert stats.chisquare(np.bincount(partners - POOL[0], minlength=len(POOL))).pvalue > 1e-3
    beta = stats.beta(CFG.mixup_alpha, CFG.mixup_alpha)
    assert stats.kstest(d[mixed, 1], beta.cdf).pvalue > 1e-3


@pytest.mark.parametrize("column", [1, 2, 4, 6])
def test_training_batches_and_cached_views_draw_the_same_distribution(draws, column):
    a, b = draws["online"][:, column], draws["views"][:, column]
    if column == 1:  # the mixup weight: continuous
        assert stats.ks_2samp(a, b).pvalue > 1e-3
        return
    values = np.union1d(a, b)
    table = np.array([[np.sum(a == v) for v in values], [np.sum(b == v) for v in values]])
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_shift_is_uniform_within_its_range(draws):
    shifts = draws["online"][:, 2].astype(int)
    assert shifts.min() == -CFG.time_shift and shifts.max() == CFG.time_shift
    assert stats.chisquare(np.bincount(shifts + CFG.time_shift)).pvalue > 1e-3


def test_the_same_seed_draws_the_same_parameters():
    rows = np.arange(10)
    def drawn(seed):
        return as_columns(draw_batch(seed, rows, CFG, FRAMES, BINS, POOL))

    np.testing.assert_array_equal(drawn(5), drawn(5))
    assert not np.array_equal(drawn(5), drawn(6))


def test_apply_mixes_shifts_and_masks_as_the_parameters_say():
    x = torch.arange(2 * 6 * 4, dtype=torch.float32).view(2, 6, 4)
    partner = -torch.ones(2, 6, 4)
    columns = torch.tensor([
        [0, 1.0, 0, 0, 0, 0, 0],     # nothing
        [7, 0.25, 2, 1, 2, 3, 1],    # mixed with weight 0.25, rolled by 2 frames, bins 1-2 and frame 3 zeroed
    ])
    draws = {name: columns[:, i] if name == "weight" else columns[:, i].long() for i, name in enumerate(FIELDS)}
    out = apply(x, partner, draws)
    assert torch.equal(out[0], x[0])
    expected = torch.roll(0.25 * x[1] + 0.75 * partner[1], shifts=2, dims=0)
    expected[:, 1:3] = 0
    expected[3, :] = 0
    assert torch.equal(out[1], expected)


def test_clip_scaled_time_masks_fit_the_clip_and_window_masks_are_drawn_as_before():
    """mask_scale: clip: a clip of 20 frames in a 50-frame window gets time masks of at most 9 x 20 / 50 = 3 frames,
    inside its 20 frames; mask_scale: window draws exactly what the recipe's masks drew (the same generator)."""
    rows = np.arange(2000) % 4
    lengths = np.array([20, 50, 80, 5])
    clip = AugmentSettings(freq_mask=6, time_mask=9, mask_scale="clip")
    drawn = np.concatenate([as_columns(draw_batch(seed, rows[i : i + 50], clip, FRAMES, BINS, POOL, lengths))
                            for seed, i in enumerate(range(0, len(rows), 50))])
    for row, length in enumerate(lengths):
        mine = drawn[rows == row]
        widest = 9 * min(length, FRAMES) // FRAMES
        assert mine[:, 6].max() == widest and (mine[:, 5] + mine[:, 6] <= min(length, FRAMES)).all()
    window = AugmentSettings(freq_mask=6, time_mask=9)
    np.testing.assert_array_equal(as_columns(draw_batch(3, rows[:50], window, FRAMES, BINS, POOL, lengths)),
                                  as_columns(draw_batch(3, rows[:50], window, FRAMES, BINS, POOL)))
