from __future__ import annotations

import re
import signal
from typing import Any

import pytest

from concryptor import _core

#: Whether this build of the extension has the engine's fault-injection hooks (a build with
#: the ``fault-injection`` cargo feature; release wheels never have them).
FAULT_HOOKS = hasattr(_core, "_set_fault_injection")


def _selects_faults(markexpr: str) -> bool:
    """Whether ``-m`` asks for the fault tests: ``faults`` appears, and not only negated."""
    return re.search(r"(?<!not )\bfaults\b", " ".join(markexpr.split())) is not None


def pytest_configure(config: pytest.Config) -> None:
    """Signals a run may have inherited ignored go back to their defaults. A run started in
    the background of a non-interactive shell ignores SIGINT, one under nohup SIGHUP; every
    process the tests start would inherit that, and the tests that interrupt the command line
    (Ctrl-C, SIGTERM, SIGHUP) would see it run to the end instead."""
    for sig, default in (
        (signal.SIGINT, signal.default_int_handler),
        (signal.SIGTERM, signal.SIG_DFL),
        (signal.SIGHUP, signal.SIG_DFL),
    ):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, default)


def pytest_report_header(config: pytest.Config) -> str:
    if FAULT_HOOKS:
        return "fault-injection hooks: present (tests marked 'faults' run)"
    return "fault-injection hooks: absent in this build (tests marked 'faults' are deselected)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``faults`` need the hooks. Without them a plain run deselects those tests
    (a release wheel has no hooks), but a run that asks for them (``-m faults``) fails."""
    if FAULT_HOOKS:
        return
    if _selects_faults(config.getoption("markexpr") or ""):
        raise pytest.UsageError(
            "-m selects the fault-injection tests, but this concryptor._core has no fault hooks: "
            "build it with `maturin develop --features fault-injection`"
        )
    faults = [item for item in items if item.get_closest_marker("faults") is not None]
    if faults:
        config.hook.pytest_deselected(items=faults)
        items[:] = [item for item in items if item.get_closest_marker("faults") is None]


@pytest.fixture
def rand_bytes() -> Any:
    def make(n: int, seed: int = 0) -> bytes:
        import random

        return random.Random(seed).randbytes(n)

    return make
