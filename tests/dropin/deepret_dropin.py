"""A pytest plugin that installs deepret's functions in place of numpy's and
scipy.signal's (``-p deepret_dropin``), as a program using deepret as a
drop-in backend does, so that numpy's and scipy's own test classes run against
deepret. It counts the calls that reach deepret and fails the session when
none did, so that a run that never exercised deepret cannot pass."""

from __future__ import annotations

import functools

import numpy as np
import scipy.signal

import deepret

calls = {"convolve": 0, "correlate": 0, "convolve2d": 0, "correlate2d": 0}


def _counting(name):
    ours = getattr(deepret, name)

    @functools.wraps(ours)
    def replacement(*args, **kwargs):
        calls[name] += 1
        return ours(*args, **kwargs)

    return replacement


# Installed when the plugin is imported: before the test modules are, so that
# their `from scipy.signal import convolve2d` takes deepret's.
np.convolve = _counting("convolve")
np.correlate = _counting("correlate")
for _name in ("convolve2d", "correlate2d"):
    _original = getattr(scipy.signal, _name)
    setattr(scipy.signal, _name, _counting(_name))
    try:  # scipy >= 1.15 keys the array-API marks of its tests on the function object
        from scipy._lib._array_api import xp_capabilities_table
    except ImportError:
        continue
    if _original in xp_capabilities_table:
        xp_capabilities_table[getattr(scipy.signal, _name)] = xp_capabilities_table[_original]


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"deepret drop-in calls: {calls}")


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and not any(calls.values()):
        session.exitstatus = 1
