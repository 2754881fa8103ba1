"""Metrics: hand-computed cases with ties, agreement with scikit-learn on random data, d-prime against a hand value,
and per-class values with the classes that cannot be scored."""
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from pipeline.task import SingleLabel, task_for
from pipeline.task.metrics import compute, d_prime


def compute_metrics(logits, labels, multi_label, classes=None):
    return compute(task_for(multi_label), logits, labels, classes)


def test_tied_scores_do_not_depend_on_row_order():
    # two clips with the same score, one positive: whichever row holds it, AP = precision at the tie = 1/2
    for labels in ([[1], [0]], [[0], [1]]):
        assert compute_metrics(np.array([[1.0], [1.0]]), np.array(labels), True)["mAP"] == pytest.approx(0.5)
    # by hand: scores 0.9, 0.5, 0.5, 0.1 with positives at 0.9 and one of the 0.5s;
    # thresholds 0.9 (P 1, R 1/2), 0.5 (P 2/3, R 1): AP = 1/2 * 1 + 1/2 * 2/3 = 5/6, in either order of the tie
    scores = np.array([[0.9], [0.5], [0.5], [0.1]])
    for labels in ([[1], [1], [0], [0]], [[1], [0], [1], [0]]):
        metrics = compute_metrics(scores, np.array(labels), True)
        assert metrics["mAP"] == pytest.approx(5 / 6)
        assert metrics["mean_auc"] == pytest.approx((1 + 0.75) / 2)  # the tied pair counts half


def test_coarse_random_scores_agree_with_scikit_learn_in_any_row_order():
    rng = np.random.default_rng(0)
    labels = (rng.random((400, 6)) < 0.2).astype(np.uint8)
    scores = np.round(rng.random((400, 6)) + 0.3 * labels, 1)  # coarse: many ties, as bf16 logits have
    expected_ap = np.mean([average_precision_score(labels[:, c], scores[:, c]) for c in range(6)])
    expected_auc = np.mean([roc_auc_score(labels[:, c], scores[:, c]) for c in range(6)])
    for order in (np.arange(400), np.arange(400)[::-1], rng.permutation(400)):
        metrics = compute_metrics(scores[order], labels[order], True)
        assert metrics["mAP"] == pytest.approx(expected_ap, abs=1e-12)
        assert metrics["mean_auc"] == pytest.approx(expected_auc, abs=1e-12)


def test_d_prime_by_hand():
    # d' = sqrt(2) * Phi^-1(AUC); Phi^-1(0.8413447) = 1.0 (one standard deviation)
    assert d_prime(0.8413447460685429) == pytest.approx(math.sqrt(2), rel=1e-9)
    assert d_prime(0.5) == pytest.approx(0.0, abs=1e-12)


def test_classes_without_positives_are_left_out_and_named():
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]])
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.5], [0.7, 0.3, 0.5], [0.1, 0.6, 0.5]])
    metrics = compute_metrics(scores, labels, True, ["dog", "cat", "owl"])
    assert metrics["classes_scored"] == 2 and metrics["classes_unscored"] == ["owl"]
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["per_class"]["AP"]["owl"] is None


def test_single_label_per_class_accuracy_and_confusion():
    labels = np.eye(3)[[0, 0, 1, 1, 1]]
    logits = np.eye(3)[[0, 1, 1, 1, 0]]
    metrics = compute_metrics(logits, labels, False, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(3 / 5) and SingleLabel().headline == "accuracy"
    assert SingleLabel().score(logits, labels) == pytest.approx(0.6)
    assert metrics["per_class"]["accuracy"] == {"a": 0.5, "b": pytest.approx(2 / 3), "c": None}
    assert metrics["per_class"]["confusion"] == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    assert metrics["classes_unscored"] == ["c"]



def test_confusion_counts_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    labels, logits = np.eye(7)[rng.integers(0, 6, 300)], rng.normal(size=(300, 7))  # class 6 never true
    expected = confusion_matrix(labels.argmax(1), logits.argmax(1), labels=np.arange(7)).tolist()
    assert compute_metrics(logits, labels, False)["per_class"]["confusion"] == expected

def test_target_statistics_of_one_hot_and_uniform_targets():

    labels = np.eye(4)[[0, 1, 2, 3]]
    one_hot = task_for(False).target_statistics(labels.copy(), labels)
    assert one_hot["entropy"] == pytest.approx(0, abs=1e-9) and one_hot["top1_probability"] == 1
    assert one_hot["labelled_probability"] == 1
    uniform = task_for(False).target_statistics(np.full((4, 4), 0.25), labels)
    assert uniform["entropy"] == pytest.approx(np.log(4)) and uniform["labelled_probability"] == 0.25
    halves = task_for(True).target_statistics(np.full((4, 4), 0.5), labels)  # Bernoulli(0.5) per class
    assert halves["entropy"] == pytest.approx(np.log(2)) and halves["labelled_probability"] == 0.5


def test_target_statistics_in_blocks_are_those_of_all_clips():
    rng = np.random.default_rng(0)
    probs = rng.uniform(size=(20_000, 6)).astype(np.float32)  # more clips than one block of 8,192
    labels = (rng.uniform(size=(20_000, 6)) < 0.2).astype(np.uint8)
    stats = task_for(True).target_statistics(probs, labels)
    p = np.clip(probs.astype(np.float64), 1e-12, 1.0)
    entropy = -(p * np.log(p) + (1 - p) * np.log(np.clip(1 - p, 1e-12, 1.0))).mean(axis=1)
    labelled = [probs[i, labels[i] > 0].mean() for i in range(len(probs)) if labels[i].any()]
    assert stats["entropy"] == pytest.approx(entropy.mean(), rel=1e-12)
    assert stats["top1_probability"] == pytest.approx(probs.max(axis=1).mean(), rel=1e-6)
    assert stats["labelled_probability"] == pytest.approx(np.mean(labelled), rel=1e-6)
