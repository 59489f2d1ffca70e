"""Damaged input for the tests that feed it to vitalgru's readers and its gateway
(``test_*_damaged.py``, ``io/test_damaged_input.py``): hypothesis strategies for JSON of any
shape, good JSON with some values replaced at any depth, and byte edits of a good file or
message."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Examples per test: deterministic (the same in every run, so that CI is repeatable);
#: raise ``max_examples`` and drop ``derandomize`` by hand to search further.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

#: JSON of any shape (NaN and infinities included, which Python's json reads and writes).
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),  # fmt: skip
    max_leaves=10,
)

#: One edit of a byte string: (where, as a fraction of its length; how many bytes to take
#: away there; what to put there).
EDIT = st.tuples(st.floats(0, 1), st.integers(0, 12), st.binary(max_size=6))


def edited(data: bytes, edits: list[tuple[float, int, bytes]]) -> bytes:
    """``data`` with each of ``edits`` (:data:`EDIT`) applied in turn."""
    out = bytearray(data)
    for where, cut, insert in edits:
        i = int(where * len(out))
        out[i : i + cut] = insert
    return bytes(out)


@st.composite
def replaced(draw: st.DrawFn, good: Any, extra_keys: list[str] | None = None) -> Any:
    """``good`` (parsed JSON) with one to three of its values, at any depth, replaced by
    :data:`JSON`; with ``extra_keys``, sometimes a key it lacks is added instead."""
    out = json.loads(json.dumps(good))
    for _ in range(draw(st.integers(1, 3))):
        node = out
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict)
                                       else range(len(node))))  # fmt: skip
            if not isinstance(node[key], dict | list):
                break
            node = node[key]
        if isinstance(node, dict) and (node or extra_keys):
            keys = st.sampled_from(sorted(node)) if node else st.sampled_from(extra_keys or [])
            if extra_keys:
                keys = keys | keys | st.sampled_from(extra_keys)  # mostly a key it has
            node[draw(keys)] = draw(JSON)
        elif isinstance(node, list) and node:
            node[draw(st.integers(0, len(node) - 1))] = draw(JSON)
    return out
