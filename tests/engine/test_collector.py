"""The collector's schedule for long-running processes (engine/collector.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from engine.collector import YOUNG_THRESHOLD, tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_young_collections_are_rare() -> None:
    gc.unfreeze()
    _, middle, old = gc.get_threshold()
    tune_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    # the modules, classes and functions loaded so far are out of every later collection
    assert gc.get_freeze_count() > 10_000


@pytest.mark.usefixtures("restored_collector")
def test_cyclic_garbage_is_still_collected() -> None:
    """Only start-up is frozen: a cycle made later is freed by the next young collection."""
    tune_collector()

    class Node:
        pass

    freed = []
    node = Node()
    node.self = node  # type: ignore[attr-defined]
    weakref.finalize(node, freed.append, True)
    del node
    assert not freed  # a cycle: reference counting alone cannot free it
    gc.collect(0)
    assert freed == [True]
