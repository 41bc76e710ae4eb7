"""Destinations (e-mail domains, hosts, URL hosts) and the rules that read them."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from trackwrap.config import RealFileSystem
from trackwrap.errors import NormalizeError, ProfileError
from trackwrap.inspectors import default_inspectors
from trackwrap.policy import Context, Pipeline, Policy, ServerProfile, normalize
from trackwrap.policy._rules import _CONDITIONS, _WHEN_KEYS

PROFILE = ServerProfile.from_mapping(
    {
        "version": 1,
        "name": "mail",
        "match": ["mail-server"],
        "tools": {
            "send": {"kind": "email.send", "email": ["to", "to[]", "cc", "cc[]"]},
            "send_one": {"kind": "email.send", "email": ["to"]},
            "send_list": {"kind": "email.send", "email": ["to[]"]},
            "query": {"kind": "db.query", "host": ["host", "replicas[]"]},
            "fetch": {"kind": "net.http", "url": ["url"], "host": ["proxy"]},
            "other": {"kind": "misc.other"},
        },
    },
    source="mail.yaml",
)

INSIDE = ["acme.com", "*.acme.com"]
BUSINESS_HOURS = {"days": ["mon", "tue", "wed", "thu", "fri"], "between": "09:00-18:00",
                  "tz": "Europe/Berlin"}
# 2026-05-05 is a Tuesday; Berlin is UTC+2 in May.
EVENING = datetime(2026, 5, 5, 21, 30, tzinfo=timezone(timedelta(hours=2)))
MORNING = datetime(2026, 5, 5, 11, 0, tzinfo=timezone(timedelta(hours=2)))
SATURDAY_NOON = datetime(2026, 5, 9, 12, 0, tzinfo=timezone(timedelta(hours=2)))


def destinations(tool: str, arguments: dict[str, Any]) -> tuple[str, ...]:
    return normalize(server="mail", tool=tool, arguments=arguments, profile=PROFILE).destinations


# --- extraction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"to": "bob@acme.com"}, ("acme.com",)),
        ({"to": "Bob@ACME.com"}, ("acme.com",)),
        ({"to": "a@acme.com, b@example.org; c@sub.acme.com"},
         ("acme.com", "example.org", "sub.acme.com")),
        ({"to": ["a@acme.com", "b@example.org"]}, ("acme.com", "example.org")),
        ({"to": ["a@acme.com, b@example.org"]}, ("acme.com", "example.org")),
        ({"to": "a@acme.com", "cc": ["c@example.org"]}, ("acme.com", "example.org")),
        ({"to": "a@acme.com", "cc": "b@acme.com"}, ("acme.com",)),  # each domain once
        ({"to": "Bob Smith <bob@example.org>"}, ("example.org",)),
        ({"to": "bob@acme.com."}, ("acme.com",)),
        ({"to": '"x@acme.com"@example.org'}, ("example.org",)),  # the last @ counts
        ({"to": "a@acme.com@example.org"}, ("example.org",)),
        ({"to": "nobody"}, ("nobody",)),  # no @: the whole string
        ({"to": "Nobody@"}, ("nobody@",)),  # empty domain: the whole string
        ({"to": "a@acme.com, , ;"}, ("acme.com",)),  # empty entries are no addresses
        ({"to": ""}, ()),
        ({"to": []}, ()),
        ({"to": None}, ()),
        ({}, ()),
        ({"to": "a@\uff41\uff43\uff4d\uff45\u3002com"}, ("acme.com",)),  # full-width
    ],
)
def test_email_destinations(arguments: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert destinations("send", arguments) == expected


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("send", {"to": 5}, "to must be a string"),
        ("send", {"to": ["a@acme.com", 5]}, r"to\[1\] must be a string"),
        ("send", {"cc": {"a": "b@acme.com"}}, "cc must be a string"),
        ("send_one", {"to": ["a@acme.com"]}, "to must be a string, got list"),
        ("send_list", {"to": "a@acme.com"}, "to must be a list of strings"),
        ("query", {"host": ["db1"]}, "host must be a string"),
        ("query", {"host": 5432}, "host must be a string"),
    ],
)
def test_wrong_types_do_not_normalize(tool: str, arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(NormalizeError, match=message):
        normalize(server="mail", tool=tool, arguments=arguments, profile=PROFILE)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("db1.replica.acme.internal", "db1.replica.acme.internal"),
        ("DB1.Replica.ACME.internal", "db1.replica.acme.internal"),
        ("db1.replica.acme.internal:5432", "db1.replica.acme.internal"),
        ("db1.replica.acme.internal.", "db1.replica.acme.internal"),
        ("db1.replica.acme.internal.:5432", "db1.replica.acme.internal"),
        ("admin@db1.acme.internal:5432", "db1.acme.internal"),
        ("[::1]:5432", "::1"),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("::1", "::1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("10.0.0.7:5432", "10.0.0.7"),
        ("postgres://u:p@db1.replica.acme.internal:5432/app", "db1.replica.acme.internal"),
        ("postgresql://[::1]:5432/app", "::1"),
        ("//db1.acme.internal/app", "db1.acme.internal"),
        ("db1.acme.internal/app", "db1.acme.internal"),
        ("https://acme.com@example.org/x", "example.org"),
        ("https://example.org#@acme.com", "example.org"),
        ("https://example.org\\@acme.com", "example.org"),
        ("[::1", "[::1"),  # no host can be told: the whole value
        ("http://", "http://"),
        ("  spaced.acme.com  ", "spaced.acme.com"),
    ],
)
def test_host_destinations(host: str, expected: str) -> None:
    assert destinations("query", {"host": host}) == (expected,)


def test_host_lists_urls_and_empty_hosts() -> None:
    assert destinations("query", {"host": "a.acme.internal", "replicas": ["b:1", "c"]}) == (
        "a.acme.internal", "b", "c")
    assert destinations("query", {"host": "", "replicas": []}) == ()
    assert destinations("fetch", {"url": "https://Files.Example.org:8443/a?b", "proxy": "p:3128"}
                        ) == ("p", "files.example.org")
    assert destinations("fetch", {"url": "file:///etc/passwd"}) == ("file:///etc/passwd",)
    assert destinations("other", {"to": "a@example.org", "host": "h"}) == ()
    unprofiled = normalize(server="x", tool="y", arguments={"to": "a@b.c"}, profile=None)
    assert unprofiled.destinations == ()


def test_email_target_is_the_first_recipient() -> None:
    def target(arguments: dict[str, Any]) -> str:
        return normalize(server="mail", tool="send", arguments=arguments,
                         profile=PROFILE).target()

    assert target({"to": " ann@acme.com , bob@example.org"}) == "ann@acme.com"
    assert target({"to": ["", "bob@example.org"]}) == "bob@example.org"
    assert target({"cc": "carl@example.org"}) == "example.org"  # no `to`: the first destination
    assert target({}) == ""
    query = normalize(server="mail", tool="query", arguments={"host": "db:5432"}, profile=PROFILE)
    assert query.target() == "db"


# --- conditions --------------------------------------------------------------------------


def ctx_at(tmp_path: Path, now: datetime) -> Context:
    root = os.path.realpath(tmp_path)
    return Context(workspace=root, roots=(), cwd=root, home=root, now=now, fs=RealFileSystem())


def decide(rules: list[dict[str, Any]], tool: str, arguments: object, ctx: Context) -> str:
    policy = Policy.from_mapping({"version": 1, "rules": rules}, source="p.yaml")
    pipeline = Pipeline(profiles={"mail": PROFILE}, policy=policy,
                        inspectors=default_inspectors())
    decision = pipeline.evaluate(server="mail", tool=tool, arguments=arguments, context=ctx)
    return decision.rule


INSIDE_RULE = {"id": "INSIDE", "outcome": "allow", "when": {"destination": INSIDE}}
OUTSIDE_RULE = {"id": "OUTSIDE", "outcome": "deny", "when": {"destination_outside": INSIDE}}


@pytest.mark.parametrize(
    ("arguments", "inside", "outside"),
    [
        ({"to": "a@acme.com"}, True, False),
        ({"to": "a@ACME.COM", "cc": "b@eu.sales.acme.com"}, True, False),
        ({"to": "a@acme.com", "cc": "b@example.org"}, False, True),
        ({"to": "a@example.org"}, False, True),
        ({"to": "a@notacme.com"}, False, True),
        ({"to": "a@acme.com.example.org"}, False, True),
        ({"to": "acme"}, False, True),
        ({"to": "a@"}, False, True),
        ({"to": ""}, False, False),  # no destinations: neither inside nor outside
        ({}, False, False),
    ],
)
def test_destination_and_destination_outside(
    tmp_path: Path, arguments: dict[str, Any], inside: bool, outside: bool
) -> None:
    ctx = ctx_at(tmp_path, MORNING)
    assert (decide([INSIDE_RULE], "send", arguments, ctx) == "INSIDE") is inside
    assert (decide([OUTSIDE_RULE], "send", arguments, ctx) == "OUTSIDE") is outside


def test_destination_globs_are_case_insensitive(tmp_path: Path) -> None:
    rule = {"id": "UPPER", "outcome": "allow", "when": {"destination": ["*.ACME.Internal"]}}
    ctx = ctx_at(tmp_path, MORNING)
    assert decide([rule], "query", {"host": "DB1.acme.INTERNAL"}, ctx) == "UPPER"
    scalar = {"id": "ONE", "outcome": "allow", "when": {"destination_outside": "acme.com"}}
    assert decide([scalar], "send", {"to": "a@example.org"}, ctx) == "ONE"


@pytest.mark.parametrize(
    ("now", "inside_window"),
    [
        (MORNING, True),
        (EVENING, False),
        (SATURDAY_NOON, False),
        (datetime(2026, 5, 5, 7, 0, tzinfo=UTC), True),  # 09:00 Berlin: start inclusive
        (datetime(2026, 5, 5, 16, 0, tzinfo=UTC), False),  # 18:00 Berlin: end exclusive
    ],
)
def test_not_time_is_the_negation_of_time(
    tmp_path: Path, now: datetime, inside_window: bool
) -> None:
    ctx = ctx_at(tmp_path, now)
    during = {"id": "DURING", "outcome": "allow", "when": {"time": BUSINESS_HOURS}}
    after = {"id": "AFTER", "outcome": "allow", "when": {"not_time": BUSINESS_HOURS}}
    assert (decide([during], "other", {}, ctx) == "DURING") is inside_window
    assert (decide([after], "other", {}, ctx) == "AFTER") is not inside_window


def test_not_time_with_a_naive_clock_fails_closed(tmp_path: Path) -> None:
    naive = datetime(2026, 5, 5, 21, 30)  # noqa: DTZ001 - a naive time is the point of the test
    after = {"id": "AFTER", "outcome": "allow", "when": {"not_time": BUSINESS_HOURS}}
    assert decide([after], "other", {}, ctx_at(tmp_path, naive)) == "PIPELINE-ERROR"


def test_wrong_argument_types_deny(tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path, MORNING)
    assert decide([INSIDE_RULE], "send", {"to": 42}, ctx) == "PIPELINE-ERROR"
    assert decide([INSIDE_RULE], "send", {"to": ["a@acme.com", None]}, ctx) == "PIPELINE-ERROR"


def test_every_when_key_compiles() -> None:
    assert set(_WHEN_KEYS) == {*_CONDITIONS, "finding"}


# --- approval keys -----------------------------------------------------------------------

APPROVAL = {
    "id": "MAIL-APPROVAL",
    "outcome": "require_approval",
    "ttl": "15m",
    "approvers": ["ops"],
    "separate_approver": True,
    "notify": ["ops", "sec_team-2"],
    "when": {"kind": "email.send"},
}


def test_approval_keys_compile() -> None:
    policy = Policy.from_mapping({"version": 1, "rules": [APPROVAL]}, source="p.yaml")
    rule = policy.rule("MAIL-APPROVAL")
    assert rule is not None
    assert (rule.ttl_seconds, rule.approvers, rule.separate_approver, rule.notify) == (
        900, ("ops",), True, ("ops", "sec_team-2"))
    plain = {"id": "PLAIN", "outcome": "require_approval", "when": {"kind": "email.send"}}
    rule = Policy.from_mapping({"version": 1, "rules": [plain]}, source="p.yaml").rule("PLAIN")
    assert rule is not None
    assert (rule.separate_approver, rule.notify) == (False, ())


def test_approval_keys_enter_the_policy_hash() -> None:
    def digest(**changes: object) -> str:
        return Policy.from_mapping(
            {"version": 1, "rules": [{**APPROVAL, **changes}]}, source="p.yaml"
        ).policy_hash

    base = digest()
    assert base == digest()
    assert digest(separate_approver=False) != base
    assert digest(notify=["ops"]) != base


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"outcome": "allow"}, "ttl is only valid with require_approval"),
        ({"outcome": "allow", "ttl": None, "approvers": None}, "separate_approver is only valid"),
        ({"outcome": "deny", "ttl": None, "approvers": None, "separate_approver": None},
         "notify is only valid with require_approval"),
        ({"separate_approver": "yes"}, "separate_approver: expected true or false"),
        ({"separate_approver": 1}, "separate_approver: expected true or false"),
        ({"notify": "ops"}, "notify: expected a non-empty list"),
        ({"notify": []}, "notify: expected a non-empty list"),
        ({"notify": ["Ops"]}, "bad channel name 'Ops'"),
        ({"notify": ["-ops"]}, "bad channel name '-ops'"),
        ({"notify": ["ops team"]}, "bad channel name 'ops team'"),
        ({"notify": [7]}, r"notify\[0\]"),
        ({"when": {"destination": []}}, "destination: expected a non-empty list"),
        ({"when": {"destination_outside": ["a b"]}}, "bad glob"),
        ({"when": {"not_time": {"between": "9-5", "tz": "UTC"}}}, "HH:MM"),
        ({"when": {"not_time": {"days": ["mon"]}}}, "missing required key"),
        ({"when": {"not_time": {"days": ["mon"], "tz": "Mars/Olympus"}}}, "unknown time zone"),
    ],
)
def test_bad_approval_keys_and_conditions(changes: dict[str, Any], message: str) -> None:
    rule = {key: value for key, value in {**APPROVAL, **changes}.items() if value is not None}
    with pytest.raises(ProfileError, match=message) as caught:
        Policy.from_mapping({"version": 1, "rules": [rule]}, source="p.yaml")
    assert "p.yaml: rule MAIL-APPROVAL" in str(caught.value)


@pytest.mark.parametrize(
    "tool",
    [
        {"kind": "email.send", "email": ["to!"]},
        {"kind": "email.send", "email": "to"},
        {"kind": "db.query", "host": [5]},
        {"kind": "db.query", "hosts": ["host"]},
    ],
)
def test_bad_destination_keys_in_profiles(tool: dict[str, Any]) -> None:
    with pytest.raises(ProfileError):
        ServerProfile.from_mapping(
            {"version": 1, "name": "x", "match": ["x"], "tools": {"t": tool}}, source="s.yaml"
        )
