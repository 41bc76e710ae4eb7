"""Policy rules and how they decide.

A policy file (``profiles/policy/*.yaml``)::

    version: 1                      # required, must be 1
    mode: enforce                   # optional: enforce (default) | monitor
    tool_pins:                      # optional
      description_changes: hold     # hold (default) | allow: wording-only tool changes pass
    rules:                          # required, non-empty
      - id: SHELL-TEST-ALLOWLIST    # required: stable id, upper-case, hyphenated, unique
        description: run the tests  # optional: used in the decision's reason
        outcome: allow              # required: allow | deny | require_approval | redact
        ttl: 15m                    # require_approval only: seconds, or 30s / 15m / 2h / 1d
        approvers: [platform-team]  # require_approval only
        separate_approver: true     # require_approval only (default false): whoever asked
                                    #   may not approve
        notify: [ops]               # require_approval only: notification channel names
                                    #   ([a-z0-9][a-z0-9_-]*)
        when:                       # required, non-empty; every condition must hold
          kind: [shell.exec]        # globs on the action kind (``git.*``)
          server: [shell]           # globs on the server name
          tool: [execute]           # globs on the tool name
          command: [pytest, python -m pytest]   # every command starts with one of these
                                    #   (token-wise); raw shell text with | ; & $ ` < > ( ) { }
                                    #   or a newline never matches
          branch: [feature/*]       # at least one branch, and every branch matches a glob
          not_branch: [main]        # no branch matches any of these globs
          destination: [acme.com, "*.acme.com"]   # at least one destination, and every
                                    #   destination matches one of these globs
          destination_outside: [acme.com, "*.acme.com"]  # some destination matches none of
                                    #   these globs (a call without destinations never matches)
          time: {days: [mon, tue], between: "09:00-18:00", tz: Europe/Berlin}
          not_time: {days: [mon, tue], between: "09:00-18:00", tz: Europe/Berlin}
                                    #   outside that window (same grammar as time)
          finding: [WORKSPACE-PATH-SCOPE]   # globs on finding rule ids (see below)
          paths: inside_workspace   # no WORKSPACE-PATH-SCOPE finding for this call
          path: [.env, "*.pem"]     # every path's file name matches one of these globs

Globs: ``*`` any run (separators included), ``?`` one character, ``[...]`` a class; a glob
condition may be a single string or a list.

A call's destinations are the lower-cased domains of its e-mail addresses and the hosts of its
host and URL arguments, as the server profile names them (see ``_profile.py``); destination
globs are compiled lower-cased too.

How a decision is made (:meth:`Policy.decide`):

1. Every finding is a deny under its own rule id, unless a rule with ``finding:`` matching it
   (and all its other conditions) gives another outcome; an ``allow`` there only neutralizes
   the finding, it never allows the action.
2. Rules without ``finding:`` are matched against the action; if none matches, the action gets
   ``DEFAULT-DENY`` ("no rule allows <kind>"). A finding rule only modulates: it never admits
   an action on its own (a secret finding mapped to ``redact`` must not let ``curl`` run).
3. Of everything that applies, the strongest outcome wins: deny > require_approval > redact >
   allow; on a tie the first finding, then the first rule in file order.

Unknown keys anywhere, a bad outcome, glob, time window, time zone or channel name,
``ttl``/``approvers``/``separate_approver``/``notify`` on another outcome, or duplicate rule ids
are a :class:`ProfileError` naming the file and rule id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trackwrap._canonical import CanonicalError, canonical_json
from trackwrap.errors import ProfileError
from trackwrap.policy._action import Action
from trackwrap.policy._conditions import (
    BranchCondition,
    CommandCondition,
    Condition,
    DestinationCondition,
    DestinationOutsideCondition,
    GlobCondition,
    NotBranchCondition,
    NotTimeCondition,
    PathNameCondition,
    PathsInsideCondition,
    TimeCondition,
)
from trackwrap.policy._context import Context
from trackwrap.policy._finding import Finding
from trackwrap.policy._glob import GlobSet
from trackwrap.policy._outcome import PRECEDENCE, Mode, Outcome
from trackwrap.policy._schema import as_bool, as_mapping, as_str, as_str_list, check_keys

__all__ = ["DEFAULT_DENY", "PIPELINE_ERROR", "Policy", "Rule", "Verdict"]

#: Rule id of the decision when no rule matched.
DEFAULT_DENY = "DEFAULT-DENY"
#: Rule id of the decision when the pipeline itself failed.
PIPELINE_ERROR = "PIPELINE-ERROR"

_RULE_ID = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*\Z")
_RESERVED = frozenset({DEFAULT_DENY, PIPELINE_ERROR})
_TTL = re.compile(r"([1-9][0-9]*)([smhd])\Z")
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CHANNEL = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_APPROVAL_KEYS = ("ttl", "approvers", "separate_approver", "notify")
_RULE_KEYS = ("id", "description", "outcome", *_APPROVAL_KEYS, "when")
_WHEN_KEYS = (
    "kind",
    "server",
    "tool",
    "command",
    "branch",
    "not_branch",
    "time",
    "not_time",
    "destination",
    "destination_outside",
    "finding",
    "paths",
    "path",
)
_POLICY_KEYS = ("version", "mode", "rules", "tool_pins")
_PIN_KEYS = ("description_changes",)
_DESCRIPTION_CHANGES = ("hold", "allow")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :meth:`Policy.decide` concludes: an outcome, the deciding rule id and why."""

    outcome: Outcome
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule; ``spec`` is the validated mapping it came from (hashed).

    ``ttl_seconds``, ``approvers``, ``separate_approver`` and ``notify`` are set only on a
    ``require_approval`` rule: how long its approval waits, who may give it, whether the person
    who asked is barred from approving, and which notification channels are told.
    """

    id: str
    outcome: Outcome
    description: str
    conditions: tuple[Condition, ...]
    findings: GlobSet | None
    ttl_seconds: int | None
    approvers: tuple[str, ...]
    source: str
    spec: Mapping[str, object]
    separate_approver: bool = False
    notify: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: object, *, source: str, index: int) -> Rule:
        """Validate and compile one entry of ``rules:``."""
        raw = as_mapping(data, where=f"{source}: rules[{index}]")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
            raise ProfileError(
                f"{source}: rules[{index}]: id must be upper-case and hyphenated, got {rule_id!r}"
            )
        where = f"{source}: rule {rule_id}"
        if rule_id in _RESERVED:
            raise ProfileError(f"{where}: {rule_id} is reserved for the pipeline")
        check_keys(raw, where=where, allowed=_RULE_KEYS, required=("id", "outcome", "when"))
        try:
            outcome = Outcome(raw["outcome"])  # type: ignore[arg-type]
        except ValueError:
            raise ProfileError(
                f"{where}: bad outcome {raw['outcome']!r} "
                f"(allowed: {', '.join(o.value for o in Outcome)})"
            ) from None
        description = (
            as_str(raw["description"], where=f"{where}: description")
            if ("description" in raw)
            else ""
        )
        ttl_seconds = None
        approvers: tuple[str, ...] = ()
        for key in _APPROVAL_KEYS:
            if key in raw and outcome is not Outcome.REQUIRE_APPROVAL:
                raise ProfileError(f"{where}: {key} is only valid with require_approval")
        if "ttl" in raw:
            ttl_seconds = _ttl(raw["ttl"], where=f"{where}: ttl")
        if "approvers" in raw:
            approvers = as_str_list(raw["approvers"], where=f"{where}: approvers")
        separate_approver = as_bool(
            raw.get("separate_approver", False), where=f"{where}: separate_approver"
        )
        notify = _channels(raw["notify"], where=f"{where}: notify") if "notify" in raw else ()
        conditions, findings = _when(raw["when"], where=f"{where}: when")
        return cls(
            id=rule_id,
            outcome=outcome,
            description=description,
            conditions=conditions,
            findings=findings,
            ttl_seconds=ttl_seconds,
            approvers=approvers,
            source=source,
            spec=raw,
            separate_approver=separate_approver,
            notify=notify,
        )

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """Whether every action condition holds (``finding:`` is checked by the policy)."""
        return all(condition.matches(action, findings, context) for condition in self.conditions)

    def reason(self, action: Action) -> str:
        """A human-readable reason naming the rule's intent and the call's target."""
        what = self.description or f"{self.outcome.value} by {self.id}"
        target = action.target()
        return f"{what}: {action.kind} {target}" if target else f"{what}: {action.kind}"


@dataclass(frozen=True, slots=True)
class Policy:
    """An ordered set of rules, a mode, and a hash that names this exact rule set."""

    rules: tuple[Rule, ...]
    mode: Mode
    policy_hash: str
    description_changes: str = "hold"
    """``tool_pins.description_changes``: ``allow`` lets a pinned tool whose new version differs
    only in its top-level ``title``/``description`` through; ``hold`` (default) holds every
    change for approval. Schema changes are always held."""

    @classmethod
    def from_mapping(cls, data: object, *, source: str) -> Policy:
        """Validate and compile one policy file's mapping."""
        raw = as_mapping(data, where=source)
        check_keys(raw, where=source, allowed=_POLICY_KEYS, required=("version", "rules"))
        if raw["version"] != 1 or isinstance(raw["version"], bool):
            raise ProfileError(f"{source}: version must be 1, got {raw['version']!r}")
        mode = Mode.ENFORCE
        if "mode" in raw:
            try:
                mode = Mode(raw["mode"])  # type: ignore[arg-type]
            except ValueError:
                raise ProfileError(
                    f"{source}: mode must be enforce or monitor, got {raw['mode']!r}"
                ) from None
        entries = raw["rules"]
        if not isinstance(entries, list) or not entries:
            raise ProfileError(f"{source}: rules must be a non-empty list")
        rules = tuple(
            Rule.from_mapping(entry, source=source, index=i) for i, entry in enumerate(entries)
        )
        pins = as_mapping(raw.get("tool_pins", {}), where=f"{source}: tool_pins")
        check_keys(pins, where=f"{source}: tool_pins", allowed=_PIN_KEYS)
        changes = pins.get("description_changes", "hold")
        if changes not in _DESCRIPTION_CHANGES:
            raise ProfileError(
                f"{source}: tool_pins.description_changes must be hold or allow, got {changes!r}"
            )
        return cls.build(rules, mode=mode, description_changes=str(changes))

    @classmethod
    def build(
        cls, rules: Sequence[Rule], *, mode: Mode, description_changes: str = "hold"
    ) -> Policy:
        """A policy from compiled rules: rejects duplicates and computes the hash."""
        if not rules:
            raise ProfileError("a policy needs at least one rule")
        seen: dict[str, Rule] = {}
        for rule in rules:
            if rule.id in seen:
                raise ProfileError(
                    f"{rule.source}: rule {rule.id}: duplicate rule id "
                    f"(first defined in {seen[rule.id].source})"
                )
            seen[rule.id] = rule
        body: Any = {"mode": mode.value, "rules": [dict(rule.spec) for rule in rules]}
        if description_changes != "hold":
            body["tool_pins"] = {"description_changes": description_changes}
        try:
            canonical = canonical_json(body)
        except CanonicalError as exc:
            raise ProfileError(f"policy has values JSON cannot carry: {exc}") from exc
        digest = "sha256:" + hashlib.sha256(canonical).hexdigest()
        return cls(rules=tuple(rules), mode=mode, policy_hash=digest,
                   description_changes=description_changes)

    @classmethod
    def merged(cls, policies: Sequence[Policy]) -> Policy:
        """One policy from several files, rules in order; enforce if any of them enforces."""
        if not policies:
            raise ProfileError("no policy files to merge")
        monitor = all(policy.mode is Mode.MONITOR for policy in policies)
        rules = [rule for policy in policies for rule in policy.rules]
        lenient = all(policy.description_changes == "allow" for policy in policies)
        return cls.build(rules, mode=Mode.MONITOR if monitor else Mode.ENFORCE,
                         description_changes="allow" if lenient else "hold")

    def with_mode(self, mode: Mode) -> Policy:
        """The same rules under another mode (e.g. a ``--monitor`` flag)."""
        if mode is self.mode:
            return self
        return self.build(self.rules, mode=mode, description_changes=self.description_changes)

    def rule(self, rule_id: str) -> Rule | None:
        """The rule with ``rule_id`` (for its ``ttl``, ``approvers``, ``notify`` …), if any."""
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def decide(self, action: Action, findings: Sequence[Finding], context: Context) -> Verdict:
        """Apply the rules to an action and its findings (see the module docstring)."""
        best: Verdict | None = None
        for finding in findings:
            verdict = self._finding_verdict(finding, action, findings, context)
            if verdict is not None and (
                best is None or PRECEDENCE[verdict.outcome] > PRECEDENCE[best.outcome]
            ):
                best = verdict
        matched = False
        for rule in self.rules:
            if rule.findings is not None or not rule.matches(action, findings, context):
                continue
            matched = True
            if best is None or PRECEDENCE[rule.outcome] > PRECEDENCE[best.outcome]:
                best = Verdict(outcome=rule.outcome, rule=rule.id, reason=rule.reason(action))
        if best is None or (not matched and best.outcome is not Outcome.DENY):
            return Verdict(
                outcome=Outcome.DENY, rule=DEFAULT_DENY, reason=f"no rule allows {action.kind}"
            )
        return best

    def _finding_verdict(
        self,
        finding: Finding,
        action: Action,
        findings: Sequence[Finding],
        context: Context,
    ) -> Verdict | None:
        """The verdict one finding contributes; ``None`` when a rule allows it."""
        outcome: Outcome | None = None
        rule_id = finding.rule
        for rule in self.rules:
            if rule.findings is None or not rule.findings.match(finding.rule):
                continue
            if not rule.matches(action, findings, context):
                continue
            if outcome is None or PRECEDENCE[rule.outcome] > PRECEDENCE[outcome]:
                outcome, rule_id = rule.outcome, rule.id
        if outcome is None:
            outcome = Outcome.DENY
        if outcome is Outcome.ALLOW:
            return None
        return Verdict(outcome=outcome, rule=rule_id, reason=finding.detail)


def _when(value: object, *, where: str) -> tuple[tuple[Condition, ...], GlobSet | None]:
    spec = as_mapping(value, where=where)
    check_keys(spec, where=where, allowed=_WHEN_KEYS)
    if not spec:
        raise ProfileError(f"{where}: must name at least one condition")
    conditions: list[Condition] = []
    findings: GlobSet | None = None
    for key, item in spec.items():
        at = f"{where}.{key}"
        if key == "finding":
            findings = _globs(item, at)
        else:
            conditions.append(_CONDITIONS[key](item, at))
    # Cheap field globs first, the time windows last.
    conditions.sort(key=_cost)
    return tuple(conditions), findings


def _globs(value: object, where: str) -> GlobSet:
    return GlobSet.compile(as_str_list(value, where=where, scalar_ok=True), where=where)


def _paths(value: object, where: str) -> Condition:
    if value != "inside_workspace":
        raise ProfileError(f"{where}: the only value is inside_workspace, got {value!r}")
    return PathsInsideCondition()


#: How each ``when:`` key (but ``finding``) compiles: ``(value, where) -> condition``.
_CONDITIONS: Mapping[str, Callable[[object, str], Condition]] = {
    "kind": lambda value, at: GlobCondition(field="kind", globs=_globs(value, at)),
    "server": lambda value, at: GlobCondition(field="server", globs=_globs(value, at)),
    "tool": lambda value, at: GlobCondition(field="tool", globs=_globs(value, at)),
    "command": lambda value, at: CommandCondition.parse(value, where=at),
    "branch": lambda value, at: BranchCondition(globs=_globs(value, at)),
    "not_branch": lambda value, at: NotBranchCondition(globs=_globs(value, at)),
    "time": lambda value, at: TimeCondition.parse(value, where=at),
    "not_time": lambda value, at: NotTimeCondition.parse(value, where=at),
    "destination": lambda value, at: DestinationCondition.parse(value, where=at),
    "destination_outside": lambda value, at: DestinationOutsideCondition.parse(value, where=at),
    "path": lambda value, at: PathNameCondition(globs=_globs(value, at)),
    "paths": _paths,
}


def _cost(condition: Condition) -> int:
    if isinstance(condition, GlobCondition):
        return 0
    return 2 if isinstance(condition, TimeCondition | NotTimeCondition) else 1


def _channels(value: object, *, where: str) -> tuple[str, ...]:
    names = as_str_list(value, where=where)
    for name in names:
        if not _CHANNEL.match(name):
            raise ProfileError(
                f"{where}: bad channel name {name!r} (lower-case letters, digits, - and _)"
            )
    return names


def _ttl(value: object, *, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        found = _TTL.match(value)
        if found is not None:
            return int(found.group(1)) * _TTL_UNITS[found.group(2)]
    raise ProfileError(f"{where}: expected seconds or 30s / 15m / 2h / 1d, got {value!r}")
