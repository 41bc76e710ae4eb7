from __future__ import annotations

import json
import math

import pytest
import rfc8785

from trackwrap._canonical import CanonicalError, canonical_json, is_canonical, loads_strict

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


@pytest.mark.parametrize("value", [
    {"b": 1, "a": [True, None, "x\u2028\x7f\n\"\\"]},
    {"n": 2**53 - 1, "m": -(2**53 - 1), "h": "sha256:" + "0" * 64, "l": [1234567890123456]},
    {"\U0001f600": 1, "\ufb01": 2, "z": {"é": "ü"}},
])
def test_is_canonical_agrees_with_the_reference(value: object) -> None:
    reference = bytes(rfc8785.dumps(value))
    parsed = loads_strict(reference)
    assert is_canonical(reference, parsed)
    loose = json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    assert is_canonical(loose, parsed) is (loose == reference)


def test_is_canonical_refuses_what_has_no_canonical_form() -> None:
    assert not is_canonical(b'{"big":1152921504606846976}', {"big": 2**60})
    assert not is_canonical(b'{"s":"\\ud800"}', {"s": "\ud800"})
