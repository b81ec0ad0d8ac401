"""Shared fixtures: one torch thread, BatchNorm randomisation, temporary models, tiny data,
a time limit per test.

The fast lane is ``pytest -m "not slow"``; the full suite (what CI runs) is ``pytest``.
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from igc.data.base import DatasetSplits, TensorImageDataset


# ------------------------------------------------------------------------------ native kernel
def pytest_sessionstart(session: pytest.Session) -> None:
    """Build (or load from torch's cache) the fused CPU kernel once, before any test runs:
    the first build takes a minute or two, which must not fall inside a time-limited test
    or a CLI subprocess. Without a compiler this logs its one line and tests use the
    PyTorch form."""
    from igc.deploy.native import native

    native()


# ------------------------------------------------------------------------------ threads
@pytest.fixture(scope="session")
def native_kernel():
    """The native kernel module, built (or loaded from torch's cache) once per test session;
    the test is skipped where it cannot be built."""
    from igc.deploy import native as nat

    module = nat.native()
    if module is None:
        pytest.skip(f"no native kernel here: {nat.native_reason()}")
    return module


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module of many tiny passes (OpenMP stalls on a shared 2-core
    machine; the numbers do not depend on it); the count is restored after."""
    from igc.runtime import num_threads

    with num_threads(1):
        yield


# ------------------------------------------------------------------------------ BatchNorm
def randomize_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters in every BatchNorm of
    ``module`` (so that folding and exports are tested on more than the identity);
    returns it in eval mode. Test modules import it: ``from conftest import randomize_bn``."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) * 0.6 - 0.3)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.data.copy_(torch.rand(c, generator=g) * 0.6 - 0.3)
    return module.eval()


# ------------------------------------------------------------------------------ models
@pytest.fixture
def temp_model() -> Iterator[Callable[..., None]]:
    """``temp_model(name, builder, **entry)`` registers a model for one test (through the
    registry's public :func:`~igc.models.registry.temporary_model`) and removes it after."""
    import contextlib

    from igc.models import registry

    with contextlib.ExitStack() as stack:
        def register(name: str, builder: Callable[..., nn.Module], **entry: object) -> None:
            if name not in registry.list_models():
                stack.enter_context(registry.temporary_model(name, builder, **entry))

        yield register


def zoo_params() -> list:
    """Every registered model as ``pytest.param``: the first of each family runs in the
    fast lane, the rest are marked slow. Test modules import it:
    ``from conftest import zoo_params``."""
    from igc.models.registry import list_models, model_entry

    seen: set[str] = set()
    params = []
    for name in list_models():
        family = model_entry(name).family
        params.append(pytest.param(name, marks=(pytest.mark.slow,) if family in seen else ()))
        seen.add(family)
    return params


#: Tiny networks for training tests: 1-channel 8x8 inputs, a wider twin, a fixed-size one.
TINY, TINY_OTHER, FIXED = "test_tiny_igcv2", "test_tiny_igcv2_wide", "test_fixed_input"


class FixedInput(nn.Module):
    """A network that only takes 32x32 inputs (flatten + linear)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(in_chans * 32 * 32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


@pytest.fixture
def tiny_models(temp_model) -> tuple[str, str, str]:
    """Registers :data:`TINY` (an IGCV2 CIFAR net of width 4), :data:`TINY_OTHER` (width
    8) and :data:`FIXED` for one test; returns their names."""
    from igc.models.cifar import cifar_net

    specs = {
        TINY: dict(block="igcv2", width=4, depth=5, branch_sizes=((2, 2), (2, 4), (4, 4)),
                   stem_stride=2),
        TINY_OTHER: dict(block="igcv2", width=8, depth=5,
                         branch_sizes=((2, 4), (4, 4), (4, 8))),
    }
    for name, kwargs in specs.items():
        temp_model(name, cifar_net, family="igcv2", table="test", dataset="fashion-mnist",
                   input_size=8, num_classes=10, in_chans=1, **kwargs)
    temp_model(FIXED, FixedInput, family="test", table="test", dataset="cifar10",
               input_size=32, num_classes=10)
    return TINY, TINY_OTHER, FIXED


# ------------------------------------------------------------------------------ tiny data
def make_tiny_splits(n_train: int = 96, n_test: int = 40, size: int = 8, seed: int = 0,
                     channels: int = 1, classes: int = 10) -> DatasetSplits:
    """Class-dependent noisy patterns: ``classes`` classes, ``channels`` x ``size`` x
    ``size`` uint8 images, labels ``i % classes``; named fashion-mnist."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(classes, channels, size, size, generator=g) * 255

    def split(n: int) -> TensorImageDataset:
        labels = torch.arange(n) % classes
        noise = torch.randn(n, channels, size, size, generator=g) * 40
        images = (protos[labels] + noise).clamp(0, 255).to(torch.uint8)
        return TensorImageDataset(images, labels)

    names = [f"class{i}" for i in range(classes)]
    return DatasetSplits("fashion-mnist", split(n_train), split(n_test), names, channels,
                         size, (0.5,) * channels, (0.25,) * channels)


@pytest.fixture
def tiny_splits() -> Callable[..., DatasetSplits]:
    """The factory :func:`make_tiny_splits`."""
    return make_tiny_splits


@pytest.fixture
def tiny_data(monkeypatch) -> DatasetSplits:
    """Every data set name loads the default tiny splits (96 train / 40 test, 8x8)."""
    import igc.train.splits as splits_mod

    splits = make_tiny_splits()
    monkeypatch.setattr(splits_mod, "load_dataset", lambda *a, **k: splits)
    return splits


# ------------------------------------------------------------------------------ hostile input
def snapshot(root: Path, skip: str | None = None) -> dict[str, str]:
    """Every file below ``root`` with the hash of its bytes (and every folder), but for
    paths starting with ``skip``. Test modules import it: ``from conftest import snapshot``."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(root.rglob("*"))
            if not (skip and str(p.relative_to(root)).startswith(skip))}


@pytest.fixture
def refused(capfd, time_limit) -> Callable[..., str]:
    """``refused(argv, root, limit_s, skip=None)`` runs ``igc ARGV`` under a time limit and
    asserts what every hostile-input row asserts: exit status 2, exactly one line on
    stderr (``igc: error: ...``), no traceback, and no file below ``root`` created,
    changed or removed (see :func:`snapshot`); returns that line."""
    from igc.cli import main

    def run(argv: list[str], root: Path, limit_s: float, skip: str | None = None) -> str:
        before = snapshot(root, skip)
        capfd.readouterr()
        time_limit(limit_s)
        code = main(argv)
        captured = capfd.readouterr()
        err = captured.err
        assert code == 2, err
        assert err.count("\n") == 1 and err.startswith("igc: error: "), err
        assert "Traceback" not in err + captured.out, err
        assert snapshot(root, skip) == before
        return err

    return run


# ------------------------------------------------------------------------------ time limit
class TimeLimitExceeded(Exception):
    """A test ran past its time limit (a hang fails instead of blocking the suite)."""


@pytest.fixture
def time_limit() -> Iterator[Callable[[float], None]]:
    """``time_limit(seconds)``: fail the test with :class:`TimeLimitExceeded` once it runs
    longer (SIGALRM; the main thread only). Cleared after the test."""
    def alarm(signum, frame):
        raise TimeLimitExceeded("the test ran past its time limit")

    old = signal.signal(signal.SIGALRM, alarm)

    def start(seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, seconds)

    yield start
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def _no_leaked_sigint_handler(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test (or the library code it runs) that leaves SIGINT's handler changed is named
    by a warning and the handler restored, so later tests see the one the process started
    with (which is SIG_IGN, not Python's own, in a suite run as a shell's background job)."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        import warnings

        warnings.warn(f"{request.node.nodeid} left SIGINT's handler as {after!r}",
                      stacklevel=1)
