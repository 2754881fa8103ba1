"""The CMKD loss against values worked out by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from pipeline.task import MultiLabel, SingleLabel


def test_single_label_kd_is_kl_of_softmaxes():
    student = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [1/4, 3/4]
    teacher = torch.tensor([[0.0, 0.0]])  # softmax = [1/2, 1/2]
    p = SingleLabel().teacher_probs(teacher, tau=1.0)
    # KL = 1/2 ln(1/2 / 1/4) + 1/2 ln(1/2 / 3/4) = 1/2 ln(4/3)
    assert SingleLabel().kd_loss(student, p).item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    labels = torch.tensor([[0.0, 1.0]])
    total, gt, kd = SingleLabel().loss(student, labels, p, lam=0.5)
    assert gt.item() == pytest.approx(-math.log(0.75), rel=1e-6)  # cross-entropy
    # 0.5 * ln(4/3) + 0.5 * 0.5 * ln(4/3)
    assert total.item() == pytest.approx(0.75 * math.log(4 / 3), rel=1e-6)


def test_tau_divides_only_the_teacher_and_has_no_square_factor():
    student = torch.tensor([[0.0, math.log(3.0)]])
    teacher = torch.tensor([[0.0, 2 * math.log(3.0)]])  # / tau=2 -> same distribution as the student
    p = SingleLabel().teacher_probs(teacher, tau=2.0)
    torch.testing.assert_close(p, torch.tensor([[0.25, 0.75]]))
    assert SingleLabel().kd_loss(student, p).item() == pytest.approx(0.0, abs=1e-7)
    total, gt, _ = SingleLabel().loss(student, torch.tensor([[0.0, 1.0]]), p, lam=0.3)
    assert total.item() == pytest.approx(0.3 * -math.log(0.75), rel=1e-6)


def test_multi_label_kd_is_bernoulli_kl_per_class():
    student = torch.tensor([[0.0, 0.0]])  # q = 1/2 for both classes
    teacher = torch.tensor([[math.log(3.0), -math.log(3.0)]])  # p = 3/4 and 1/4
    p = MultiLabel().teacher_probs(teacher, tau=1.0)
    torch.testing.assert_close(p, torch.tensor([[0.75, 0.25]]))
    per_class = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # the same for both classes
    assert MultiLabel().kd_loss(student, p).item() == pytest.approx(per_class, rel=1e-6)
    total, gt, kd = MultiLabel().loss(student, torch.tensor([[1.0, 0.0]]), p, lam=0.5)
    assert gt.item() == pytest.approx(math.log(2.0), rel=1e-6)  # BCE at q = 1/2
    assert total.item() == pytest.approx(0.5 * math.log(2.0) + 0.5 * per_class, rel=1e-6)


def test_multi_label_kd_has_the_gradient_of_bce_on_soft_targets():
    student = torch.randn(4, 5, requires_grad=True)
    p = torch.sigmoid(torch.randn(4, 5))
    MultiLabel().kd_loss(student, p).backward()
    reference = student.detach().clone().requires_grad_(True)
    F.binary_cross_entropy_with_logits(reference, p).backward()
    torch.testing.assert_close(student.grad, reference.grad)


def test_without_teacher_the_loss_is_the_ground_truth_loss():
    student, labels = torch.randn(3, 4), torch.eye(4)[:3]
    total, gt, kd = SingleLabel().loss(student, labels, None, lam=0.5)
    assert total.item() == pytest.approx(F.cross_entropy(student, labels.argmax(1)).item(), rel=1e-6)
    assert kd.item() == 0.0
