"""How transferable are features? Yosinski et al. (2014) in miniature, plus filter ablation.

The experiment (Yosinski, Clune, Bengio & Lipson, NeurIPS 2014) splits the classes of a dataset
into two disjoint tasks A and B, trains a base network on each (baseA, baseB), then for every
depth n builds new networks for task B whose first n layers come from a base network:

========  ======================  ============================================
arm       first n layers from     first n layers during training on B
========  ======================  ============================================
BnB       baseB (self-transfer)   frozen
BnB+      baseB                   fine-tuned
AnB       baseA (transfer)        frozen
AnB+      baseA                   fine-tuned
random    fresh random init       frozen (random, untrained filters)
========  ======================  ============================================

The layers above n always start from a fresh random initialisation and are trained on B. If
AnB falls below BnB as n grows, the features of layer n are specific to the classes of A;
where they stay level, the features are general.

Filter importance is measured by ablation: zero one filter's output channel and record how much
the test accuracy of each class drops (:func:`ablation_drops`).

Everything here runs on the CPU in a few seconds: the network is tiny (:class:`SmallCNN`) and
:func:`run_transfer_experiment` sets the torch thread count to 1 for the duration of the run, so
on one machine the same seed always gives bit-identical accuracies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from cnnlab.data import Split, load_digits_tensors, split_classes, subset_classes
from cnnlab.training import fit

__all__ = [
    "ARMS",
    "SmallCNN",
    "TransferConfig",
    "TransferResult",
    "ablated",
    "ablation_drops",
    "accuracy",
    "class_specificity",
    "fixed_threads",
    "freeze_layers",
    "per_class_accuracy",
    "run_transfer_experiment",
    "train",
    "train_classifier",
    "transfer_layers",
]

ARMS: tuple[str, ...] = ("BnB", "BnB+", "AnB", "AnB+", "random")
"""The arms of the experiment, in the order of the paper's figure, then the random baseline."""


class SmallCNN(nn.Module):
    """A stack of 3x3 convolution blocks and one linear classifier.

    Block ``i`` is ``Conv2d(c_{i-1}, c_i, 3, padding=1) -> ReLU``, followed by a 2x2 max pool
    when ``i`` is in ``pool_after``. The last block's output is flattened and fed to
    ``Linear(c_L * h * w, n_classes)``. ``layers[i]`` is block ``i``, the unit that the
    transfer experiment copies, freezes or ablates; the "depth n" of the experiment counts
    blocks.

    Parameters
    ----------
    n_classes : int
        Number of outputs.
    channels : sequence of int
        Output channels of each block (3 to 5 blocks in the book, any number >= 1 works).
    pool_after : sequence of int
        0-based indices of the blocks followed by a 2x2 max pool.
    image_size : int
        Height and width of the (square) input.
    in_channels : int

    Shape
    -----
    - Input: (N, in_channels, image_size, image_size)
    - Output: (N, n_classes), logits

    Examples
    --------
    >>> net = SmallCNN(5, channels=(8, 16, 16, 32), pool_after=(0, 2), image_size=8)
    >>> net(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 5])
    >>> [tuple(f.shape) for f in net.features(torch.zeros(2, 1, 8, 8))]
    [(2, 8, 4, 4), (2, 16, 4, 4), (2, 16, 2, 2), (2, 32, 2, 2)]
    """

    def __init__(
        self,
        n_classes: int,
        channels: Sequence[int] = (8, 16, 16, 32),
        pool_after: Sequence[int] = (0, 2),
        image_size: int = 8,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) == 0 or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty sequence of ints >= 1, got {channels}")
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        bad = [i for i in pool_after if not 0 <= i < len(channels)]
        if bad:
            raise ValueError(f"pool_after indices {bad} are outside 0..{len(channels) - 1}")
        side = int(image_size)
        blocks = []
        previous = in_channels
        for i, width in enumerate(channels):
            parts: list[nn.Module] = [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU()]
            if i in pool_after:
                if side < 2:
                    raise ValueError(
                        f"image_size {image_size} is too small for {len(pool_after)} poolings"
                    )
                parts.append(nn.MaxPool2d(2))
                side //= 2
            blocks.append(nn.Sequential(*parts))
            previous = width
        self.channels = channels
        self.layers = nn.ModuleList(blocks)
        self.head = nn.Linear(previous * side * side, n_classes)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of every block, from the first to the last: a list of (N, c_i, h_i, w_i)."""
        out = []
        for block in self.layers:
            x = block(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.layers:
            x = block(x)
        return self.head(x.flatten(1))


@contextlib.contextmanager
def fixed_threads(n: int = 1) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(n)``, then restore the previous count.

    With one thread, CPU reductions run in a fixed order, so training is bit-reproducible on a
    given machine.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with fixed_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _seeded_model(seed: int, make: Callable[[], SmallCNN]) -> SmallCNN:
    """Build a model from ``make`` with its weights drawn from ``torch.manual_seed(seed)``,
    leaving the caller's global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def freeze_layers(model: SmallCNN, n: int) -> SmallCNN:
    """Stop gradients to the first ``n`` blocks of ``model`` (``requires_grad = False``).

    Returns the model itself. Blocks from ``n`` on and the head stay trainable.

    Examples
    --------
    >>> net = freeze_layers(SmallCNN(3, channels=(4, 4, 4), pool_after=()), 2)
    >>> [p.requires_grad for p in net.layers[1].parameters()], net.layers[2][0].weight.requires_grad
    ([False, False], True)
    """
    _check_depth(model, n)
    for i, block in enumerate(model.layers):
        for p in block.parameters():
            p.requires_grad_(i >= n)
    for p in model.head.parameters():
        p.requires_grad_(True)
    return model


def transfer_layers(source: SmallCNN, target: SmallCNN, n: int, freeze: bool) -> SmallCNN:
    """Copy the weights of the first ``n`` blocks of ``source`` into ``target``.

    The copy is exact (``Tensor.copy_``) and shares no storage with ``source``. With
    ``freeze=True`` those ``n`` blocks are frozen (:func:`freeze_layers`), otherwise every
    parameter of ``target`` stays trainable (fine-tuning). Blocks from ``n`` on and the head are
    left as they were in ``target``.

    Returns
    -------
    SmallCNN
        ``target`` itself.

    Examples
    --------
    >>> a = SmallCNN(2, channels=(4, 4), pool_after=())
    >>> b = SmallCNN(2, channels=(4, 4), pool_after=())
    >>> _ = transfer_layers(a, b, 1, freeze=True)
    >>> conv_a, conv_b = a.layers[0][0], b.layers[0][0]
    >>> torch.equal(conv_a.weight, conv_b.weight), conv_b.weight.requires_grad
    (True, False)
    """
    _check_depth(source, n)
    _check_depth(target, n)
    with torch.no_grad():
        for i in range(n):
            src, dst = source.layers[i].state_dict(), target.layers[i].state_dict()
            for name, tensor in src.items():
                if dst[name].shape != tensor.shape:
                    raise ValueError(
                        f"block {i} parameter {name!r}: source shape {tuple(tensor.shape)} "
                        f"differs from target shape {tuple(dst[name].shape)}"
                    )
                dst[name].copy_(tensor)
    freeze_layers(target, n if freeze else 0)
    return target


def _check_depth(model: SmallCNN, n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(model.layers):
        raise ValueError(
            f"n must be an int in 0..{len(model.layers)} (number of blocks), got {n!r}"
        )


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float = 0.01,
    batch_size: int = 128,
    seed: int = 0,
) -> list[float]:
    """Train the trainable parameters of ``model`` with Adam and cross-entropy.

    :func:`cnnlab.training.fit` with ``schedule='linear'``: the learning rate decays linearly
    from ``lr`` at the first step to ``lr / steps`` at the last. Each epoch visits the training
    set once in an order drawn from a ``torch.Generator`` seeded with ``seed``, in minibatches
    of ``batch_size``. Frozen parameters (``requires_grad=False``) are left out of the optimiser
    and never change.

    Parameters
    ----------
    model : nn.Module
    x : Tensor, shape (N, C, H, W)
    y : Tensor, shape (N,), int64 class indices
    epochs : int
    lr : float
        Adam's learning rate.
    batch_size : int
    seed : int
        Seed of the minibatch order.

    Returns
    -------
    list of float
        The mean training loss of each epoch.
    """
    history = fit(
        model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, schedule="linear", seed=seed
    )
    return history.loss


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of the images whose largest logit is at the true class."""
    model.eval()
    return float((model(x).argmax(1) == y).double().mean())


@torch.no_grad()
def per_class_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int | None = None
) -> np.ndarray:
    """Accuracy within each class: entry c is the share of class-c images classified as c.

    Returns
    -------
    ndarray, shape (n_classes,)
        NaN for a class with no image.

    Examples
    --------
    >>> class Fixed(nn.Module):
    ...     def forward(self, x):
    ...         return torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> per_class_accuracy(Fixed(), torch.zeros(3), torch.tensor([0, 1, 1])).tolist()
    [1.0, 0.5]
    """
    model.eval()
    predicted = model(x).argmax(1)
    k = int(n_classes) if n_classes is not None else int(y.max()) + 1
    hits = torch.bincount(y[predicted == y], minlength=k).double()
    counts = torch.bincount(y, minlength=k).double()
    return (hits / counts).numpy()


@contextlib.contextmanager
def ablated(model: SmallCNN, layer: int, filters: Sequence[int]) -> Iterator[SmallCNN]:
    """Zero the output channels ``filters`` of block ``layer`` while the body runs.

    A forward hook multiplies the block's output (after ReLU and pooling) by a 0/1 channel mask,
    which is what removing those filters does to every later layer. The hook is removed on exit.

    Examples
    --------
    >>> net = SmallCNN(2, channels=(3, 3), pool_after=())
    >>> x = torch.randn(1, 1, 4, 4)
    >>> with ablated(net, 0, [1]):
    ...     float(net.features(x)[0][:, 1].abs().sum().detach())
    0.0
    """
    if not 0 <= layer < len(model.layers):
        raise ValueError(f"layer must be in 0..{len(model.layers) - 1}, got {layer!r}")
    width = model.channels[layer]
    filters = list(filters)
    bad = [f for f in filters if not 0 <= f < width]
    if bad:
        raise ValueError(f"filters {bad} are outside 0..{width - 1} (block {layer} has {width})")

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        mask = output.new_ones((1, width, 1, 1))  # the output's own device and dtype
        mask[0, filters] = 0.0
        return output * mask

    handle = model.layers[layer].register_forward_hook(hook)
    try:
        yield model
    finally:
        handle.remove()


def ablation_drops(
    model: SmallCNN, x: torch.Tensor, y: torch.Tensor, n_classes: int | None = None
) -> list[np.ndarray]:
    r"""Per-class accuracy drop when each filter of each block is zeroed, one at a time.

    .. math::

        D^{(l)}_{k,c} = \mathrm{acc}_c(\text{model}) - \mathrm{acc}_c(\text{model with
        filter } k \text{ of block } l \text{ zeroed})

    Parameters
    ----------
    model : SmallCNN
    x, y : test images (N, C, H, W) and labels (N,)
    n_classes : int, optional

    Returns
    -------
    list of ndarray
        One array per block, shape (filters of that block, n_classes). Positive entries mean the
        class lost accuracy; negative ones (rare, small) mean it gained.
    """
    with fixed_threads(1):
        base = per_class_accuracy(model, x, y, n_classes)
        drops = []
        for layer, width in enumerate(model.channels):
            rows = []
            for k in range(width):
                with ablated(model, layer, [k]):
                    rows.append(base - per_class_accuracy(model, x, y, len(base)))
            drops.append(np.stack(rows))
    return drops


@dataclass(frozen=True)
class LayerSpecificity:
    """How the effect of a layer's filters is spread over the classes (see class_specificity).

    Attributes
    ----------
    mean_drop : float
        Mean accuracy drop over filters and classes.
    classes_hurt : float
        Among filters whose ablation hurts at least one class by ``threshold`` or more, the
        mean share of classes so hurt (1 = every class, 1/C = a single class). NaN if none.
    concentration : float
        Mean over the same filters of ``max_c d_c / sum_c d_c`` with ``d_c = max(drop_c, 0)``:
        1/C when every class suffers alike, 1 when one class carries all the damage. NaN if
        no filter reaches ``threshold``. (Filters below it are left out: a filter whose removal
        flips a single test image would otherwise count as perfectly specific.)
    active_filters : int
        Number of filters whose ablation hurts some class by ``threshold`` or more.
    """

    mean_drop: float
    classes_hurt: float
    concentration: float
    active_filters: int


def class_specificity(drops: np.ndarray, threshold: float = 0.05) -> LayerSpecificity:
    """Summarise how class-specific a layer's filters are from its ablation drops.

    Parameters
    ----------
    drops : ndarray, shape (filters, classes)
        One block's entry of :func:`ablation_drops`.
    threshold : float
        An accuracy drop counted as "hurting" a class.

    Returns
    -------
    LayerSpecificity

    Examples
    --------
    >>> general = np.full((2, 4), 0.2)               # each filter hurts all 4 classes alike
    >>> specific = np.array([[0.4, 0, 0, 0], [0, 0, 0.4, 0]])   # each hurts one class
    >>> class_specificity(general).concentration, class_specificity(specific).concentration
    (0.25, 1.0)
    >>> class_specificity(general).classes_hurt, class_specificity(specific).classes_hurt
    (1.0, 0.25)
    """
    drops = np.asarray(drops, dtype=float)
    if drops.ndim != 2 or drops.size == 0:
        raise ValueError(
            f"drops must be a non-empty (filters, classes) array, got shape {drops.shape}"
        )
    positive = np.clip(drops, 0.0, None)
    hurt = positive >= threshold
    active = hurt.any(axis=1)
    classes_hurt = float(hurt[active].mean(axis=1).mean()) if active.any() else float("nan")
    kept = positive[active]
    concentration = (
        float((kept.max(axis=1) / kept.sum(axis=1)).mean()) if active.any() else float("nan")
    )
    return LayerSpecificity(float(drops.mean()), classes_hurt, concentration, int(active.sum()))


@dataclass(frozen=True)
class TransferConfig:
    """Everything that defines one run of the transferability experiment.

    The defaults are the book's configuration: scikit-learn digits at 8x8, four blocks,
    eight epochs, three seeds, 66 networks in all; well under a minute on one CPU core.
    :meth:`large` is a bigger one.

    Attributes
    ----------
    channels, pool_after : the :class:`SmallCNN` architecture.
    image_size : int
        Digits are resized to this size (8 is the native size).
    epochs, lr, batch_size : training of every network (base and arms alike).
    seeds : tuple of int
        One repetition of the whole experiment (bases and arms) per seed.
    split_seed : int
        Seed of the class split into tasks A and B (:func:`cnnlab.data.split_classes`).
    data_seed : int
        Seed of the train/test split (:func:`cnnlab.data.load_digits_tensors`).
    test_fraction : float
    """

    channels: tuple[int, ...] = (8, 16, 16, 32)
    pool_after: tuple[int, ...] = (0, 2)
    image_size: int = 8
    epochs: int = 8
    lr: float = 0.02
    batch_size: int = 50
    seeds: tuple[int, ...] = (0, 1, 2)
    split_seed: int = 0
    data_seed: int = 0
    test_fraction: float = 1 / 3

    @classmethod
    def large(cls) -> TransferConfig:
        """A slower configuration: 16x16 digits, five wider blocks, five seeds (135 networks,
        of the order of ten minutes on one CPU core)."""
        return cls(
            channels=(16, 32, 32, 64, 64),
            pool_after=(1, 3),
            image_size=16,
            epochs=12,
            lr=0.01,
            batch_size=50,
            seeds=(0, 1, 2, 3, 4),
        )

    def model(self, n_classes: int) -> SmallCNN:
        """A freshly initialised network of this configuration (global RNG state)."""
        return SmallCNN(n_classes, self.channels, self.pool_after, self.image_size)


@dataclass
class TransferResult:
    """Test accuracies of the transferability experiment on task B (and of baseA on A).

    Attributes
    ----------
    config : TransferConfig
    task_a, task_b : tuple of int
        The original digit labels of each task.
    depths : tuple of int
        1..L, the number of transferred blocks.
    base_a, base_b : ndarray, shape (seeds,)
        Test accuracy of baseA on A and of baseB on B.
    accuracy : dict of str -> ndarray, shape (seeds, len(depths))
        Test accuracy on B of each arm (:data:`ARMS`) at each depth.
    """

    config: TransferConfig
    task_a: tuple[int, ...]
    task_b: tuple[int, ...]
    depths: tuple[int, ...]
    base_a: np.ndarray
    base_b: np.ndarray
    accuracy: dict[str, np.ndarray] = field(default_factory=dict)

    def mean(self, arm: str) -> np.ndarray:
        """Mean over seeds of an arm's accuracy at each depth, shape (len(depths),)."""
        return self.accuracy[arm].mean(axis=0)

    def std(self, arm: str) -> np.ndarray:
        """Standard deviation over seeds (``ddof=0``) at each depth, shape (len(depths),)."""
        return self.accuracy[arm].std(axis=0)

    def table(self, digits: int = 3) -> str:
        """A plain-text table: one row per arm, one column per depth, ``mean ± std``."""
        head = f"{'arm':<8}" + "".join(f"{'n=' + str(n):>16}" for n in self.depths)
        rows = [head]
        for arm in ARMS:
            cells = "".join(
                f"{m:>9.{digits}f} ± {s:.{digits}f}"[-16:].rjust(16)
                for m, s in zip(self.mean(arm), self.std(arm), strict=True)
            )
            rows.append(f"{arm:<8}" + cells)
        rows.append(
            f"{'baseB':<8}{self.base_b.mean():>9.{digits}f} ± {self.base_b.std():.{digits}f}"
            f"   (baseA on A: {self.base_a.mean():.{digits}f} ± {self.base_a.std():.{digits}f})"
        )
        return "\n".join(rows)


def _run_seed(arm_index: int, n: int, seed: int) -> int:
    """A distinct, reproducible seed for every (seed, arm, depth) network."""
    return 10_000 * seed + 100 * (arm_index + 1) + n


def train_classifier(data: Split, n_classes: int, config: TransferConfig, seed: int) -> SmallCNN:
    """Train a fresh network of ``config`` on ``data`` from ``torch.manual_seed(seed)``.

    Runs with one torch thread and leaves the global random state untouched.
    """
    with fixed_threads(1):
        model = _seeded_model(seed, lambda: config.model(n_classes))
        train(
            model,
            data.x_train,
            data.y_train,
            epochs=config.epochs,
            lr=config.lr,
            batch_size=config.batch_size,
            seed=seed,
        )
    return model


class _Above(nn.Module):
    """The blocks of ``model`` from ``n`` on and its head, sharing their parameters."""

    def __init__(self, model: SmallCNN, n: int) -> None:
        super().__init__()
        self.blocks = model.layers[n:]
        self.head = model.head

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        return self.head(h.flatten(1))


def _train_above_frozen(
    model: SmallCNN, n_frozen: int, data: Split, config: TransferConfig, seed: int
) -> None:
    """Train ``model`` whose first ``n_frozen`` blocks are frozen.

    Frozen blocks compute the same features at every step, so they run once over the training
    set and only the blocks above them see the minibatches: the same training, cheaper.
    """
    x = data.x_train
    if n_frozen > 0:
        with torch.no_grad():
            for block in model.layers[:n_frozen]:
                x = block(x)
    train(
        _Above(model, n_frozen),
        x,
        data.y_train,
        epochs=config.epochs,
        lr=config.lr,
        batch_size=config.batch_size,
        seed=seed,
    )
    model.eval()


def run_transfer_experiment(
    config: TransferConfig | None = None,
    data: Split | None = None,
    progress: Callable[[str], None] | None = None,
) -> TransferResult:
    """Run the transferability experiment of Yosinski et al. (2014) on two halves of the digits.

    For each seed: train baseA on task A and baseB on task B; then for each depth n in 1..L and
    each arm of :data:`ARMS`, build a fresh network, copy (and freeze, for the frozen arms) its
    first n blocks from baseB (BnB, BnB+) or baseA (AnB, AnB+), or freeze its random first n
    blocks (random), train it on B and measure its accuracy on B's test images. All training
    uses the same epochs, learning rate and batch size; runs with one torch thread.

    Parameters
    ----------
    config : TransferConfig, optional
        Defaults to ``TransferConfig()``, the book's configuration.
    data : Split, optional
        A 10-class split; defaults to ``load_digits_tensors(config.image_size, config.data_seed,
        config.test_fraction)``.
    progress : callable, optional
        Called with a short message after each trained network (for example ``print``).

    Returns
    -------
    TransferResult

    Examples
    --------
    >>> tiny = TransferConfig(channels=(4, 4), pool_after=(1,), epochs=1, seeds=(0,))
    >>> result = run_transfer_experiment(tiny)
    >>> result.depths, result.accuracy["AnB"].shape
    ((1, 2), (1, 2))
    """
    config = config if config is not None else TransferConfig()
    if data is None:
        data = load_digits_tensors(config.image_size, config.data_seed, config.test_fraction)
    n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    task_a, task_b = split_classes(n_classes, config.split_seed)
    data_a, data_b = subset_classes(data, task_a), subset_classes(data, task_b)
    depths = tuple(range(1, len(config.channels) + 1))
    shape = (len(config.seeds), len(depths))
    result = TransferResult(
        config,
        task_a,
        task_b,
        depths,
        np.zeros(len(config.seeds)),
        np.zeros(len(config.seeds)),
        {arm: np.zeros(shape) for arm in ARMS},
    )
    say = progress or (lambda _message: None)
    with fixed_threads(1):
        for s, seed in enumerate(config.seeds):
            base_a = train_classifier(data_a, len(task_a), config, _run_seed(-1, 0, seed))
            base_b = train_classifier(data_b, len(task_b), config, _run_seed(-1, 50, seed))
            result.base_a[s] = accuracy(base_a, data_a.x_test, data_a.y_test)
            result.base_b[s] = accuracy(base_b, data_b.x_test, data_b.y_test)
            say(f"seed {seed}: baseA {result.base_a[s]:.3f}, baseB {result.base_b[s]:.3f}")
            sources = {"BnB": base_b, "BnB+": base_b, "AnB": base_a, "AnB+": base_a}
            for j, n in enumerate(depths):
                for a, arm in enumerate(ARMS):
                    run_seed = _run_seed(a, n, seed)
                    model = _seeded_model(run_seed, lambda: config.model(len(task_b)))
                    if arm == "random":
                        freeze_layers(model, n)
                    else:
                        transfer_layers(sources[arm], model, n, freeze=not arm.endswith("+"))
                    _train_above_frozen(
                        model, 0 if arm.endswith("+") else n, data_b, config, run_seed
                    )
                    result.accuracy[arm][s, j] = accuracy(model, data_b.x_test, data_b.y_test)
                    say(f"seed {seed} {arm:>6} n={n}: {result.accuracy[arm][s, j]:.3f}")
    return result
