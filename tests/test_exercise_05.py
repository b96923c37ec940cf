"""Exercise 05 (transfer and filter importance): its references, its inputs, and its grading.

The grading test releases the exercise and grades one batch: the instructor solution, the
released notebook, an honest wrong answer (it freezes only the convolution weights, so frozen
biases still move, and it ablates a filter by zeroing its weights, so relu(bias) survives) and a
notebook that calls the forbidden ``cnnlab.transfer.transfer_layers``. The solution must earn
full marks, the released notebook zero, and the wrong answer exactly the tests that the same
wrong functions, run here, pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exercise_harness import (
    assert_full_marks,
    assert_grader_agrees_with_this_process,
    assert_not_implemented,
    batch_fixture,
    exercise_dir,
    load_module,
    not_implemented,
    self_check_report,
)

from cnnlab.exercises import Limits, load_exercise
from cnnlab.exercises.spec import draw_inputs

EXERCISE = exercise_dir("05_transfer")
LIMITS = Limits(timeout=90, memory_mb=2048, nproc=64, fsize_mb=64)

ex05 = load_module(EXERCISE / "tests.py", "exercise_05_tests")

WRONG_FREEZE = '''
def freeze_and_step(model, n, x, y, lr):
    """Freezes the convolution weights only: the biases of frozen blocks still move."""
    net = build_model(model)
    for block in net.layers[:n]:
        block[0].weight.requires_grad_(False)
    logits = net(torch.from_numpy(np.asarray(x, dtype=np.float64)))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(np.asarray(y)))
    loss.backward()
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p -= lr * p.grad
    return parameter_vector(net)
'''
WRONG_ABLATION = '''
def ablation_importance(model, layer, filter, x, y):
    """Zeroes the filter's weights, not its output: relu(bias) is left in the channel."""
    x = torch.from_numpy(np.asarray(x, dtype=np.float64))
    y = np.asarray(y)
    k = model[1][0].shape[0]

    def accuracies(net):
        with torch.no_grad():
            predicted = net(x).argmax(1).numpy()
        return np.bincount(y[predicted == y], minlength=k) / np.bincount(y, minlength=k)

    base = accuracies(build_model(model))
    blocks = list(model[0])
    weight, bias, pool = blocks[layer]
    weight = weight.copy()
    weight[filter] = 0.0
    blocks[layer] = (weight, bias, pool)
    return base - accuracies(build_model((tuple(blocks), model[1])))
'''
USES_REFERENCE = """
def transfer(model_a, model_b, n):
    from cnnlab.transfer import transfer_layers

    net_b = transfer_layers(build_model(model_a), build_model(model_b), n, freeze=False)
    return parameter_vector(net_b)
"""


def _flat(model) -> np.ndarray:
    blocks, head = model
    return np.concatenate(
        [a.ravel() for w, b, _ in blocks for a in (w, b)] + [*map(np.ravel, head)]
    )


def _sizes(model) -> list[int]:
    blocks, head = model
    return [w.size + b.size for w, b, _ in blocks] + [head[0].size + head[1].size]


def test_reference_network_matches_a_direct_torch_forward():
    """build_reference gives the network the plain data describes: conv, relu, pool, head."""
    rng = np.random.default_rng(0)
    model = ex05.random_model(rng, **ex05.DEEP)
    x = torch.from_numpy(rng.normal(size=(3, 2, 8, 8)))
    h = x
    for weight, bias, pool in model[0]:
        h = torch.relu(
            torch.nn.functional.conv2d(
                h, torch.from_numpy(weight), torch.from_numpy(bias), padding=1
            )
        )
        h = torch.nn.functional.max_pool2d(h, 2) if pool else h
    head_w, head_b = (torch.from_numpy(a) for a in model[1])
    expected = h.flatten(1) @ head_w.T + head_b
    with torch.no_grad():
        np.testing.assert_allclose(
            ex05.build_reference(model)(x).numpy(), expected.numpy(), rtol=1e-12
        )
    np.testing.assert_array_equal(ex05.parameter_vector(ex05.build_reference(model)), _flat(model))


@pytest.mark.parametrize("n", range(4))
def test_reference_step_keeps_frozen_blocks_and_matches_a_manual_gradient_step(n):
    rng = np.random.default_rng(n)
    model = ex05.random_model(rng, **ex05.DEEP)
    x, y = ex05.labelled_images(rng, model, 10, 8)
    after = ex05.reference_freeze_and_step(model, n, x, y, 0.5)
    before = _flat(model)
    frozen = sum(_sizes(model)[:n])
    np.testing.assert_array_equal(after[:frozen], before[:frozen])
    # Independent step: autograd on every parameter of a fresh copy, then theta - lr * grad.
    net = ex05.build_reference(model)
    loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
    grads = torch.autograd.grad(loss, list(net.parameters()))
    step = before - 0.5 * np.concatenate([g.numpy().ravel() for g in grads])
    np.testing.assert_allclose(after[frozen:], step[frozen:], rtol=1e-12, atol=1e-14)
    assert np.any(after[frozen:] != before[frozen:])


def test_reference_ablation_equals_removing_the_filter_from_the_next_layer():
    """Zeroing output channel k of block l = deleting input channel k of block l + 1."""
    rng = np.random.default_rng(3)
    model = ex05.random_model(rng, **ex05.DEEP)
    x, y = ex05.labelled_images(rng, model, 60, 8)
    blocks = list(model[0])
    weight, bias, pool = blocks[1]
    weight = weight.copy()
    weight[:, 2] = 0.0
    blocks[1] = (weight, bias, pool)
    pruned = ex05.build_reference((tuple(blocks), model[1]))

    def accuracies(net):
        with torch.no_grad():
            predicted = net(torch.from_numpy(x)).argmax(1).numpy()
        return np.array([np.mean(predicted[y == c] == c) for c in range(4)])

    expected = accuracies(ex05.build_reference(model)) - accuracies(pruned)
    np.testing.assert_allclose(ex05.reference_ablation_importance(model, 0, 2, x, y), expected)


def test_every_ablation_case_moves_some_class():
    """The cases pick a filter that matters, so an answer of zeros fails each of them."""
    for test in load_exercise(EXERCISE).tests:
        if test.function == "ablation_importance":
            args, _ = draw_inputs(test)
            assert np.any(test.reference(*args) != 0), test.name


def test_reference_transfer_takes_blocks_from_a_and_the_rest_from_b():
    rng = np.random.default_rng(5)
    model_a, model_b, _ = ex05._transfer_case(
        2, 5, 3, in_channels=2, channels=(3, 4, 5), pool_after=(0,)
    )(rng)
    got = ex05.reference_transfer(model_a, model_b, 2)
    cut = sum(_sizes(model_a)[:2])
    np.testing.assert_array_equal(got[:cut], _flat(model_a)[:cut])
    np.testing.assert_array_equal(got[cut:], _flat(model_b)[cut:])


WRONG = {"freeze_and_step": WRONG_FREEZE, "ablation_importance": WRONG_ABLATION}


graded = batch_fixture(
    EXERCISE, LIMITS, honest_wrong=WRONG, uses_reference={"transfer": USES_REFERENCE}
)


def test_solution_scores_full_marks(graded):
    assert_full_marks(graded["solution"], EXERCISE)


def test_released_notebook_scores_zero(graded):
    assert_not_implemented(graded["released"])


def test_honest_wrong_answer_earns_exactly_what_its_functions_earn_here(graded):
    """The grader's verdict per test equals a comparison made in this process."""
    result = graded["honest_wrong"]
    expected_pass = assert_grader_agrees_with_this_process(result, EXERCISE, WRONG)
    exercise = load_exercise(EXERCISE)
    # With nothing frozen the two freezes agree; with a frozen block the biases give it away.
    assert "freeze_nothing" in expected_pass
    assert {"freeze_one_block", "freeze_two_of_three", "freeze_all_blocks_deep"}.isdisjoint(
        expected_pass
    )
    assert {t.name for t in exercise.tests if t.function == "transfer"} <= expected_pass
    assert {"ablation_first_block", "ablation_last_block"} - expected_pass
    assert 0 < result.score < exercise.max_score


def test_forbidden_reference_raises_in_the_worker(graded):
    result = graded["uses_reference"]
    transfer_tests = [t for t in result.tests if t.function == "transfer"]
    assert transfer_tests and not any(t.passed for t in transfer_tests)
    assert "forbidden" in " ".join(t.message for t in transfer_tests)
    # Its other functions are the solution's.
    assert all(t.passed for t in result.tests if t.function != "transfer")


def test_released_self_check_reports_not_implemented(graded, capsys):
    out = self_check_report("transfer", not_implemented, graded.release, capsys)
    assert "transfer: 0/2 points on the visible tests" in out
    assert "not implemented yet" in out


def test_every_test_has_a_nudge_then_the_formula():
    for test in load_exercise(EXERCISE).tests:
        nudge, formula = test.hints
        assert nudge and formula and nudge != formula, test.name
