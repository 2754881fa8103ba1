"""Training killed with SIGKILL and run again ends exactly where an uninterrupted run ends."""
import signal
import subprocess
import sys
import time

import torch
import yaml

from pipeline import layout

from .conftest import MAIN, evaluate, name, path, settings, stored, train


def test_training_resumes_after_sigkill(in_workspace):
    root, params = in_workspace
    params["models"]["cnn"]["epochs"] = 6
    params["augment"]["mixup"] = 0.5  # the augmentation draws resume too
    train(settings(params), "teacher", MAIN)
    uninterrupted, _, uninterrupted_meta = stored("teacher")
    teacher = name("teacher")
    assert not layout.resume_state(teacher, MAIN).exists()  # removed once training ends
    curve = (layout.live_dir(teacher, MAIN) / "plots" / "metrics" / "val" / "accuracy.tsv").read_text()

    (root / "params_resume.yaml").write_text(yaml.safe_dump(params))
    path("teacher").unlink()
    child = subprocess.Popen([sys.executable, "-c", "from pipeline.settings import load_settings; "
                              "from pipeline.runs import Run; from pipeline.training.loop import train; "
                              "from pipeline.training import jobs; "
                              "train(load_settings('params_resume.yaml'), jobs.labels('cnn'), Run('main', 0))"],
                             cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not layout.resume_state(teacher, MAIN).exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, "training finished before it could be killed"
    saved_epoch = torch.load(layout.resume_state(teacher, MAIN), weights_only=True)["epoch"]
    assert 1 <= saved_epoch < 6 and not path("teacher").exists()

    train(settings(params), "teacher", MAIN)  # picks up after `saved_epoch`
    resumed, _, resumed_meta = stored("teacher")
    for key, tensor in uninterrupted.items():
        assert torch.equal(tensor, resumed[key]), key
    strip = lambda history: [{k: v for k, v in h.items() if k not in ("train/seconds", "train/samples_per_s")}
                             for h in history]
    assert strip(resumed_meta.history) == strip(uninterrupted_meta.history)
    # the curves logged before the kill are replayed: the same six epochs, once each
    assert (layout.live_dir(teacher, MAIN) / "plots" / "metrics" / "val" / "accuracy.tsv").read_text() == curve


def test_resume_restores_state_only_for_the_same_run(tmp_path):
    from pipeline.training.resume import resume, save_resume_state

    def fresh():
        model = torch.nn.Linear(3, 2)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        return model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)

    import numpy as np
    model, optimizer, scheduler = fresh()
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    rng = np.random.default_rng(7)
    rng.permutation(10)
    path = tmp_path / "resume.pt"
    state = rng.bit_generator.state
    save_resume_state(path, "run-a", 3, [{"epoch": 3}], model, optimizer, scheduler, rng)
    expected_draw = rng.permutation(10)
    rng.bit_generator.state = state

    other = fresh()
    assert resume(path, "run-b", *other, np.random.default_rng(0)) == (0, [], {})  # other params or inputs
    assert not path.exists()

    save_resume_state(path, "run-a", 3, [{"epoch": 3}], model, optimizer, scheduler, rng)
    torch.manual_seed(123)
    restored, restored_rng = fresh(), np.random.default_rng(0)
    assert resume(path, "run-a", *restored, restored_rng) == (3, [{"epoch": 3}], {})
    assert torch.equal(restored[0].weight, model.weight)
    assert restored[1].state_dict()["state"][0]["step"] == 1 and restored[2].last_epoch == 1
    np.testing.assert_array_equal(restored_rng.permutation(10), expected_draw)


def test_same_params_and_seed_give_the_same_model_and_metrics(in_workspace):
    _, params = in_workspace
    params["augment"]["mixup"] = 0.5
    runs = []
    for _ in range(2):
        train(settings(params), "teacher", MAIN)
        runs.append((stored("teacher")[0], evaluate(settings(params), "teacher", MAIN)))
    (first, first_metrics), (second, second_metrics) = runs
    assert first_metrics == second_metrics
    for key, tensor in first.items():
        assert torch.equal(tensor, second[key]), key


def test_another_seed_gives_another_model(in_workspace):
    from pipeline.runs import Run

    _, params = in_workspace
    for seed in (0, 1):
        train(settings(params), "teacher", Run("main", seed))
    (zero, _, _), (one, _, one_meta) = stored("teacher", Run("main", 0)), stored("teacher", Run("main", 1))
    assert one_meta.seed == 1 and not torch.equal(zero["head.weight"], one["head.weight"])


def test_a_student_resumes_only_under_the_settings_that_shaped_it(with_teacher, capsys):
    """A knob outside the ones the resume id once listed by hand (lambda, tau): distill.missing. A resume file of
    one epoch under one value is taken up under the same value and started over under another."""
    from pipeline.training import jobs
    from pipeline.training.loop import set_up
    from pipeline.training.resume import resume, save_resume_state

    _, params = with_teacher
    job = jobs.student(settings(params).direction("forward"))
    first = set_up(settings(params), job, MAIN)
    save_resume_state(first.resume_path, first.run_id, 1, [{"epoch": 1}], first.model, first.optimizer,
                      first.scheduler, first.rng)
    params["distill"]["missing"] = "gt_only"
    changed = set_up(settings(params), job, MAIN)
    assert changed.run_id != first.run_id
    assert resume(changed.resume_path, changed.run_id, changed.model, changed.optimizer, changed.scheduler,
                  changed.rng)[0] == 0
    assert "made by a run with other params or inputs; starting over" in capsys.readouterr().out
    save_resume_state(first.resume_path, first.run_id, 1, [{"epoch": 1}], first.model, first.optimizer,
                      first.scheduler, first.rng)
    params["distill"]["missing"] = "error"
    again = set_up(settings(params), job, MAIN)
    assert resume(again.resume_path, again.run_id, again.model, again.optimizer, again.scheduler, again.rng)[0] == 1
