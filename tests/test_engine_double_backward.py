"""The lean double backwards of convolution and batch-statistics BatchNorm (engine/double_backward.py).

Second derivatives are checked against finite differences of the first (``gradgradcheck``, float64) for
every case the Hessian meets: BN with and without an α-dependent scale, with running statistics updated
or absent, 4-d and 2-d inputs; convolutions dense, grouped and depthwise, strided, with a bias, with a
weight that needs a gradient and one that does not. Then every method's α-Hessian with them equals the
one PyTorch's own double backwards give (float64), and a model's loss is bit-for-bit the same.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from nasbench_stability.engine import double_backward
from nasbench_stability.engine.double_backward import LeanDoubleBackward
from nasbench_stability.engine.hessian import arch_hessian, arch_parameter_count
from nasbench_stability.methods.registry import list_methods

from method_helpers import tiny


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rand(*shape, seed=0, grad=True):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(grad)


def lean(fn):
    """``fn`` evaluated with the lean double backwards routed in."""
    def wrapped(*args):
        with LeanDoubleBackward():
            return fn(*args)
    return wrapped


@pytest.fixture
def counted(monkeypatch):
    """How often each lean function was applied (to show a case really took the lean path)."""
    calls = {"bn": 0, "conv": 0}
    for key, cls in (("bn", double_backward._BatchNormTrain), ("conv", double_backward._Conv2d)):
        original = cls.apply

        def apply(*args, _original=original, _key=key):
            calls[_key] += 1
            return _original(*args)
        monkeypatch.setattr(cls, "apply", apply)
    return calls


# ---------------------------------------------------------------------------------------------
# BatchNorm with batch statistics
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 3, 4, 5), (7, 4)])
@pytest.mark.parametrize("affine", ["none", "scale", "scale+shift"])
@pytest.mark.parametrize("running", [False, True])
def test_batch_norm_second_derivatives_match_finite_differences(shape, affine, running, counted):
    x = rand(*shape, seed=1) * 2 + 0.5
    c = shape[1]
    weight = rand(c, seed=2) if affine != "none" else None
    bias = rand(c, seed=3) if affine == "scale+shift" else None
    stats = (torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)) if running else (None, None)
    inputs = tuple(t for t in (x, weight, bias) if t is not None)

    def bn(*args):
        xs, w, b = args[0], (args[1] if weight is not None else None), (args[-1] if bias is not None else None)
        # y², so that the second derivative wrt x is not the zero of a linear map in disguise
        return F.batch_norm(xs, *stats, w, b, True, 0.1, 1e-5) ** 2

    assert gradcheck(lean(bn), inputs)
    assert gradgradcheck(lean(bn), inputs)
    assert counted["bn"] > 0


def test_batch_norm_with_running_statistics_still_updates_them_as_pytorch_does():
    x = rand(8, 3, 4, 4, seed=4)
    mine = (torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    theirs = (torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    with LeanDoubleBackward():
        y = F.batch_norm(x, *mine, None, None, True, 0.1, 1e-5)
    expected = F.batch_norm(x, *theirs, None, None, True, 0.1, 1e-5)
    assert torch.equal(y, expected)
    assert torch.equal(mine[0], theirs[0]) and torch.equal(mine[1], theirs[1])
    assert not torch.equal(mine[0], torch.zeros(3, dtype=torch.float64))


def test_batch_norm_on_running_statistics_and_calls_without_autograd_go_to_pytorch(counted):
    x = rand(8, 3, 4, 4, seed=5)
    stats = (torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    with LeanDoubleBackward():
        F.batch_norm(x, *stats, None, None, False, 0.1, 1e-5)        # eval mode: affine in x
        with torch.no_grad():
            F.batch_norm(x, None, None, None, None, True, 0.1, 1e-5)
            F.conv2d(x, rand(2, 3, 3, 3, seed=6), padding=1)
        F.conv2d(x, rand(2, 3, 3, 3, seed=6), padding="same")        # string padding
    assert counted == {"bn": 0, "conv": 0}


# ---------------------------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("groups,c_out,stride,with_bias", [(1, 4, 1, False), (1, 4, 2, True), (3, 6, 1, False),
                                                            (3, 3, 1, True)])
@pytest.mark.parametrize("weight_grad", [True, False])
def test_conv_second_derivatives_match_finite_differences(groups, c_out, stride, with_bias, weight_grad, counted):
    x = rand(2, 3, 5, 5, seed=7)
    weight = rand(c_out, 3 // groups, 3, 3, seed=8, grad=weight_grad)
    bias = rand(c_out, seed=9) if with_bias else None
    inputs = tuple(t for t in (x, weight, bias) if t is not None and t.requires_grad)

    def conv(*args):
        xs = args[0]
        w = args[1] if weight_grad else weight
        b = args[-1] if with_bias else None
        return F.conv2d(xs * xs, w, b, stride=stride, padding=1, groups=groups) ** 2

    assert gradcheck(lean(conv), inputs)
    assert gradgradcheck(lean(conv), inputs)
    assert counted["conv"] > 0


def test_conv_double_backward_skips_the_weight_term_when_the_weight_needs_no_gradient():
    """The saving itself: PyTorch computes one convolution per group for the weight's term even for a
    constant kernel; the lean backward computes only the convolution against the gradient."""
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.calls = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.calls[func.__name__.split(".")[0]] += 1
            return func(*args, **(kwargs or {}))

    a = rand(2, seed=10)
    x0 = rand(4, 8, 6, 6, seed=11, grad=False)
    box = torch.ones(8, 1, 3, 3, dtype=torch.float64)

    def convs(use_lean: bool) -> int:
        with LeanDoubleBackward() if use_lean else contextlib.nullcontext():
            y = F.conv2d(x0 * a[0], box, padding=1, groups=8)
            grad, = torch.autograd.grad((y * y).sum() * a[1], [a], create_graph=True)
            with Count() as count:
                row, = torch.autograd.grad(grad[0], [a], retain_graph=True)
        return count.calls["convolution"], row

    theirs, their_row = convs(False)
    mine, my_row = convs(True)
    torch.testing.assert_close(my_row, their_row, rtol=1e-12, atol=1e-14)
    assert theirs == 1 + 8 and mine == 1


# ---------------------------------------------------------------------------------------------
# every method's α-Hessian, and the model's loss
# ---------------------------------------------------------------------------------------------
#: supernet methods without architecture parameters (no α-Hessian): RSPS samples uniformly, ENAS' controller
#: is an LSTM outside the supernet
NO_ALPHA = {"rsps", "enas"}
SUPERNETS = [info.name for info in list_methods() if not info.table_search and info.name not in NO_ALPHA]


def test_the_methods_left_out_have_no_alpha():
    assert all(arch_parameter_count(tiny(name)) == 0 for name in NO_ALPHA)


@pytest.mark.parametrize("name", SUPERNETS)
def test_every_methods_hessian_equals_pytorchs_double_backward(name):
    method = tiny(name).double()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in method.arch_parameters():
            p.normal_(0.0, 0.5, generator=g)       # away from the uniform start, where many rows vanish
    batches = [(torch.randn(3, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (3,), generator=g))]
    noise = getattr(method, "noise", None)        # the factorized cells' RReLU draws: the same for both
    start = noise.get_state() if noise is not None else None
    # eval mode routes only the convolutions (BN on running statistics is PyTorch's): one method suffices there
    for mode in ("train", "eval") if name == "darts-v1" else ("train",):
        getattr(method, mode)()
        if noise is not None:
            noise.set_state(start)
        theirs = arch_hessian(method, batches, lean=False)
        if noise is not None:
            noise.set_state(start)
        mine = arch_hessian(method, batches, lean=True)
        assert theirs.abs().max() > 1e-8, "a vanishing Hessian would compare nothing"
        torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-13, msg=f"{name} in {mode} mode")


def test_the_loss_and_the_running_statistics_are_bit_for_bit_pytorchs():
    method = tiny("darts-v1", channels=8, cells_per_stage=2)
    x, y = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(3)), torch.arange(16) % 10
    before = {k: v.clone() for k, v in method.state_dict().items()}
    theirs = method.arch_loss(x, y)
    their_state = {k: v.clone() for k, v in method.state_dict().items()}
    method.load_state_dict(before)
    with LeanDoubleBackward():
        mine = method.arch_loss(x, y)
    assert mine.grad_fn is not None and torch.equal(mine, theirs)
    moved = [k for k in before if not torch.equal(before[k], their_state[k])]
    assert moved, "the forward should move BN running statistics (else the comparison is empty)"
    assert all(torch.equal(method.state_dict()[k], their_state[k]) for k in their_state)
