"""The fleet warning's wording (``lidframe.observe.Outlier``); the check itself runs on real worker
processes in tests/job/test_watch.py."""

from __future__ import annotations

import dataclasses

from lidframe.observe import Outlier, compare
from lidframe.store import Behaviour


def test_the_warning_names_the_environment_once_something_knows_it():
    """The hook for the fleet's environment fingerprint (issue 26): without one the warning names
    the host alone; with one, the host and the environment."""
    outlier = Outlier("tcp://10.0.0.7:4001", "gpu-node-7", 2, compare(Behaviour(), Behaviour()))
    assert str(outlier).startswith("worker tcp://10.0.0.7:4001 (host gpu-node-7) answers ")
    known = dataclasses.replace(outlier, environment="torch 2.9.1+cu128, weights 3f2a")
    assert str(known).startswith(
        "worker tcp://10.0.0.7:4001 (host gpu-node-7, environment torch 2.9.1+cu128, weights "
        "3f2a) answers differently from the other 2 worker(s)"
    )
