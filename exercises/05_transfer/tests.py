"""Graded tests of exercise 05, transfer and filter importance (chapter 5).

Imported by the grading process only. A network crosses the worker boundary as plain data,
``model = (blocks, head)``::

    blocks  a tuple of (weight, bias, pool), one per block of cnnlab.transfer.SmallCNN:
            weight (O, C, 3, 3), bias (O,), pool a bool (a 2x2 max pool after the ReLU)
    head    (weight (K, F), bias (K,)), the linear classifier on the flattened last block

Every answer is one flat float64 vector of parameters in the order of ``model.parameters()``
(block 0 weight, block 0 bias, block 1 weight, ..., head weight, head bias), or a per-class
accuracy drop. Expected answers are computed here with ``cnnlab.transfer`` (``SmallCNN`` in
float64, ``freeze_layers``, ``transfer_layers``, ``ablated``, ``per_class_accuracy``) and one
``torch.optim.SGD`` step; the worker that runs a submission receives the inputs and nothing else.
"""

import numpy as np
import torch

from cnnlab.exercises.spec import Test
from cnnlab.transfer import SmallCNN, ablated, freeze_layers, per_class_accuracy, transfer_layers

# Library shortcuts replaced by raising stubs inside the grading worker.
FORBIDDEN = [
    "cnnlab.transfer.freeze_layers",
    "cnnlab.transfer.transfer_layers",
    "cnnlab.transfer.ablated",
    "cnnlab.transfer.ablation_drops",
    "cnnlab.transfer.class_specificity",
    "cnnlab.transfer.run_transfer_experiment",
]

# Each hint: a nudge (what to look at), shown on a failure; the full recipe, shown by
# check(name, function, hint=2).
FREEZE_HINT = (
    "which parameters may move, and by how much? Compare your vector with the network's "
    "parameters before the step: the frozen blocks must not change at all, the others by one "
    "plain SGD step on the mean loss",
    "set requires_grad = False on every parameter (weight and bias) of blocks 0..n-1, compute "
    "the mean cross-entropy of the logits, backward, then p -= lr * p.grad for the trainable "
    "parameters only (torch.optim.SGD without momentum); return every parameter, frozen ones "
    "included, as one vector",
)
ABLATION_HINT = (
    "what exactly is removed? Look at what the filter's channel holds after its block (ReLU and "
    "pooling included), and at what you subtract from what, class by class",
    "drop[c] = accuracy of class c - accuracy of class c with channel `filter` of block "
    "`layer`'s output (after ReLU and pooling) set to zero; zeroing the filter's weights "
    "alone leaves relu(bias) in the channel",
)
TRANSFER_HINT = (
    "which blocks come from which network, and are both weight and bias copied? Check the "
    "order of the parameters in the vector you return",
    "blocks 0..n-1 (weight and bias) come from model A, blocks n.. and the head stay model "
    "B's; return B's parameters as one vector in the order of model.parameters()",
)


# --- The reference network, built with cnnlab from the plain-data description. -------------


def build_reference(model: tuple) -> SmallCNN:
    """The float64 ``SmallCNN`` described by ``model = (blocks, head)``."""
    blocks, (head_weight, _) = model
    channels = [int(np.shape(w)[0]) for w, _, _ in blocks]
    pool_after = [i for i, (_, _, pool) in enumerate(blocks) if pool]
    side = int(round(np.sqrt(np.shape(head_weight)[1] / channels[-1])))
    net = SmallCNN(
        int(np.shape(head_weight)[0]),
        channels,
        pool_after,
        side * 2 ** len(pool_after),
        int(np.shape(blocks[0][0])[1]),
    ).double()
    with torch.no_grad():
        for block, (weight, bias, _) in zip(net.layers, blocks, strict=True):
            block[0].weight.copy_(torch.from_numpy(np.asarray(weight, dtype=np.float64)))
            block[0].bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float64)))
        net.head.weight.copy_(torch.from_numpy(np.asarray(model[1][0], dtype=np.float64)))
        net.head.bias.copy_(torch.from_numpy(np.asarray(model[1][1], dtype=np.float64)))
    return net.eval()


def parameter_vector(net: torch.nn.Module) -> np.ndarray:
    """Every parameter of ``net``, flattened and concatenated in ``net.parameters()`` order."""
    return torch.nn.utils.parameters_to_vector(net.parameters()).detach().numpy().copy()


def reference_freeze_and_step(model, n, x, y, lr):
    net = freeze_layers(build_reference(model), int(n))
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(trainable, lr=float(lr))
    optimiser.zero_grad()
    logits = net(torch.from_numpy(np.asarray(x, dtype=np.float64)))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(np.asarray(y, np.int64)))
    loss.backward()
    optimiser.step()
    return parameter_vector(net)


def reference_ablation_importance(model, layer, filter, x, y):  # noqa: A002 (the task's name)
    net = build_reference(model)
    x_t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    y_t = torch.from_numpy(np.asarray(y, dtype=np.int64))
    n_classes = net.head.out_features
    base = per_class_accuracy(net, x_t, y_t, n_classes)
    with ablated(net, int(layer), [int(filter)]):
        return base - per_class_accuracy(net, x_t, y_t, n_classes)


def reference_transfer(model_a, model_b, n):
    target = transfer_layers(build_reference(model_a), build_reference(model_b), int(n), False)
    return parameter_vector(target)


# --- Inputs. -----------------------------------------------------------------------------


def random_blocks(rng, in_channels, channels, pool_after):
    """He-scaled random blocks ``(weight, bias, pool)``."""
    blocks, previous = [], in_channels
    for i, width in enumerate(channels):
        weight = rng.normal(size=(width, previous, 3, 3)) * np.sqrt(2.0 / (9 * previous))
        blocks.append((weight, 0.1 * rng.normal(size=width), i in pool_after))
        previous = width
    return tuple(blocks)


def random_head(rng, blocks, image_size, n_classes):
    side = image_size // 2 ** sum(bool(pool) for _, _, pool in blocks)
    features = blocks[-1][0].shape[0] * side * side
    return (
        rng.normal(size=(n_classes, features)) / np.sqrt(features),
        0.1 * rng.normal(size=n_classes),
    )


def random_model(rng, in_channels=1, channels=(4, 6), pool_after=(0,), image_size=8, n_classes=3):
    blocks = random_blocks(rng, in_channels, channels, pool_after)
    return (blocks, random_head(rng, blocks, image_size, n_classes))


def labelled_images(rng, model, count, image_size):
    """Random images and labels: mostly the network's own predictions, some random, every
    class present, so that each class has a base accuracy between 0 and 1 and ablations move it."""
    in_channels = model[0][0][0].shape[1]
    n_classes = model[1][0].shape[0]
    x = rng.normal(size=(count, in_channels, image_size, image_size))
    with torch.no_grad():
        predicted = build_reference(model)(torch.from_numpy(x)).argmax(1).numpy()
    y = np.where(rng.random(count) < 0.7, predicted, rng.integers(0, n_classes, size=count))
    y[:n_classes] = np.arange(n_classes)  # every class has at least one image
    return x, y.astype(np.int64)


def _freeze_case(n, lr=0.5, **architecture):
    size = architecture.get("image_size", 8)

    def draw(rng):
        model = random_model(rng, **architecture)
        x, y = labelled_images(rng, model, 12, size)
        return (model, n, x, y, lr)

    return draw


def _ablation_case(layer, count=60, **architecture):
    """A filter of block ``layer`` whose ablation changes some class's accuracy (when there
    is one), so that an answer of zeros fails."""
    size = architecture.get("image_size", 8)

    def draw(rng):
        model = random_model(rng, **architecture)
        x, y = labelled_images(rng, model, count, size)
        width = model[0][layer][0].shape[0]
        moving = [
            k
            for k in range(width)
            if np.any(reference_ablation_importance(model, layer, k, x, y) != 0)
        ]
        k = int(rng.choice(moving)) if moving else int(rng.integers(width))
        return (model, layer, k, x, y)

    return draw


def _transfer_case(
    n, classes_a=3, classes_b=4, in_channels=1, channels=(4, 6), pool_after=(0,), image_size=8
):
    def draw(rng):
        blocks_a = random_blocks(rng, in_channels, channels, pool_after)
        blocks_b = random_blocks(rng, in_channels, channels, pool_after)
        model_a = (blocks_a, random_head(rng, blocks_a, image_size, classes_a))
        model_b = (blocks_b, random_head(rng, blocks_b, image_size, classes_b))
        return (model_a, model_b, n)

    return draw


DEEP = {
    "in_channels": 2,
    "channels": (3, 4, 5),
    "pool_after": (0, 2),
    "image_size": 8,
    "n_classes": 4,
}
WIDE = {"in_channels": 1, "channels": (6, 4), "pool_after": (), "image_size": 6, "n_classes": 5}


TESTS = [
    # freeze_and_step
    Test(
        "freeze_one_block",
        "freeze_and_step",
        _freeze_case(1),
        reference_freeze_and_step,
        points=2,
        hint=FREEZE_HINT,
        description="two blocks (4 and 6 filters), the first frozen, one SGD step",
    ),
    Test(
        "freeze_nothing",
        "freeze_and_step",
        _freeze_case(0),
        reference_freeze_and_step,
        points=1,
        hint=FREEZE_HINT,
        description="the same network with nothing frozen: every parameter moves",
    ),
    Test(
        "freeze_all_blocks_deep",
        "freeze_and_step",
        _freeze_case(3, lr=0.3, **DEEP),
        reference_freeze_and_step,
        points=1,
        hidden=True,
        hint=FREEZE_HINT,
    ),
    Test(
        "freeze_two_of_three",
        "freeze_and_step",
        _freeze_case(2, lr=1.0, **DEEP),
        reference_freeze_and_step,
        points=2,
        hidden=True,
        hint=FREEZE_HINT,
    ),
    Test(
        "freeze_one_no_pool",
        "freeze_and_step",
        _freeze_case(1, lr=0.2, **WIDE),
        reference_freeze_and_step,
        points=1,
        hidden=True,
        hint=FREEZE_HINT,
    ),
    # ablation_importance
    Test(
        "ablation_first_block",
        "ablation_importance",
        _ablation_case(0),
        reference_ablation_importance,
        points=2,
        hint=ABLATION_HINT,
        description="a filter of block 0 (after its pooling) of the two-block network, 60 images",
    ),
    Test(
        "ablation_last_block",
        "ablation_importance",
        _ablation_case(1),
        reference_ablation_importance,
        points=1,
        hint=ABLATION_HINT,
        description="a filter of the last block, whose output the head reads",
    ),
    *[
        Test(
            f"ablation_deep_block_{layer}",
            "ablation_importance",
            _ablation_case(layer, **DEEP),
            reference_ablation_importance,
            points=1,
            hidden=True,
            hint=ABLATION_HINT,
        )
        for layer in range(3)
    ],
    Test(
        "ablation_no_pool",
        "ablation_importance",
        _ablation_case(0, count=80, **WIDE),
        reference_ablation_importance,
        points=1,
        hidden=True,
        hint=ABLATION_HINT,
    ),
    # transfer
    Test(
        "transfer_one_block",
        "transfer",
        _transfer_case(1),
        reference_transfer,
        points=1,
        exact=True,
        hint=TRANSFER_HINT,
        description="copy block 0 of A (3 classes) into B (4 classes)",
    ),
    Test(
        "transfer_all_blocks",
        "transfer",
        _transfer_case(2),
        reference_transfer,
        points=1,
        exact=True,
        hint=TRANSFER_HINT,
        description="copy both blocks: only B's head is left",
    ),
    Test(
        "transfer_none",
        "transfer",
        _transfer_case(0, classes_a=2, classes_b=2),
        reference_transfer,
        points=1,
        hidden=True,
        exact=True,
        hint=TRANSFER_HINT,
    ),
    Test(
        "transfer_two_of_three",
        "transfer",
        _transfer_case(2, 5, 3, in_channels=2, channels=(3, 4, 5), pool_after=(0, 2)),
        reference_transfer,
        points=1,
        hidden=True,
        exact=True,
        hint=TRANSFER_HINT,
    ),
]
