from __future__ import annotations

import math

import pytest
import rfc8785

from trackwrap._canonical import CanonicalError, canonical_json

CASES = [
    {},
    [],
    {"b": 1, "a": [True, False, None], "c": {"z": "", "y": -0}},
    {"ctrl": "".join(chr(c) for c in range(0x20)) + "\x7f\"\\/"},
    {"unicode": "é\u2028\u2029\u0085 ☃ 😀 \ufeff"},
    {"é": 1, "e": 2, "z": 3, "\u00ff": 4, "\ue000": 5},
    {"big": 2**53 - 1, "neg": -(2**53 - 1)},
    {"nested": [[[{"a": [1, 2, {"b": "c"}]}]]]},
    {"f": 1.5, "g": 1e21, "h": 1.0, "i": -0.0},
    {"😀": 1, "\uffff": 2},
    "plain string",
    12,
]


@pytest.mark.parametrize("value", CASES)
def test_matches_the_reference_implementation(value):
    assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("value", [{"n": math.nan}, {"s": "\ud800"}, {"i": 2**60},
                                   {1: "x"}, {"o": object()}])
def test_values_without_a_canonical_form_raise(value):
    with pytest.raises(CanonicalError):
        canonical_json(value)
