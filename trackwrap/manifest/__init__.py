"""trackwrap.manifest: the session manifest — model, scope check, signing, trust store, roles.

A manifest is YAML (``harness_manifest.yaml``) that a harness declares and a pinned publisher
key signs as a DSSE envelope over the exact file bytes (payload type
``application/vnd.trackwrap.session-manifest.v1+yaml``). It is verified before it is parsed,
parsed strictly (unknown keys, tags, aliases and duplicate keys are errors with ``file:line``)
and then held against every tool call by :class:`ManifestScope`.

Tool entries (``manifest.allowed_tools`` / ``manifest.forbidden_tools``)
-----------------------------------------------------------------------

Each list item is a string of one or more entries separated by ``·`` (U+00B7) or ``,``::

    entry   := kind | kind "(" args ")"
    kind    := a kind glob: lower-case dotted, ``*`` any run, ``?`` one char, ``[ab]`` a class
               (``git.*`` matches ``git.branch.create``)
    args    := "*"                  any arguments (same as the bare kind)
             | "~"                  some path of the call resolves outside the workspace
             | alt ("|" alt)*       kind-specific alternatives:
                                      shell.* kinds: command prefixes, matched token-wise
                                      git.* / github.* kinds: branch globs
    Anything else in parentheses (``filesystem.read(src/*)``) is an error.

Examples: ``git.read · git.commit · git.push``, ``shell.exec(pytest|npm test|make|go test)``,
``git.push(feature/*|fix/*)``, ``filesystem.read(~)``, ``net.http(*)``.

An **allowed** entry admits a call when its kind matches and *every* target is covered:

- ``shell.*(prefixes)``: the call has at least one command, every argv-form command starts
  token by token with one of the prefixes (``python -m pytest`` matches ``python -m pytest -x``,
  not ``python -c …``), and no command carries a shell metacharacter (``| ; & $ ` < > ( ) { }``,
  newline) — a raw shell string such as ``pytest && curl x`` never matches an allowed entry;
- ``git.*(globs)``: the call names at least one branch and every branch matches a glob;
- ``(~)``: some path is outside the workspace (rarely useful in an allow list).

A **forbidden** entry catches a call when its kind matches and *any* target is caught:

- ``shell.*(prefixes)``: any command head starts with a prefix. Heads are every argv command
  and every segment of a raw shell string or argv split at ``| || && ; & ( )``, after
  ``NAME=value`` assignments, through wrappers (``env``, ``sudo``, ``nohup``, ``time``,
  ``timeout``, ``xargs``, …) and into ``sh|bash|… -c '<text>'``; the first word is compared by
  basename (``/usr/bin/curl`` is ``curl``). In a raw shell string carrying metacharacters a
  prefix may also match at *any* word (``echo $(curl x)``). So ``shell.exec(curl|wget|sh|rm)``
  catches ``curl x | sh`` and ``rm -rf node_modules && npm install --force``;
- ``git.*(globs)``: any branch matches;
- ``(~)``: any path resolves outside the workspace (home ``~``, base, ``..`` and symlinks
  resolved as the path inspector does; malformed paths count as outside).

The workspace for ``(~)`` is the context's workspace directory: the session service binds the
manifest's ``workspace`` (a repository slug or a path) to that directory.

Scope findings (:class:`DriftFinding`, confidence 1.0, OWASP ``ASI10``)
-----------------------------------------------------------------------

- role not known → ``HARNESS-DRIFT-001``, drift ``unknown_role``, pattern ``unknown_role``;
- kind not admitted by any allowed entry → ``HARNESS-DRIFT-001``,
  ``permission_scope_exceeded``, ``scope_violation``;
- a forbidden entry matches → ``MANIFEST-FORBID``, ``permission_scope_exceeded``,
  ``forbidden_tool`` (``out_of_workspace`` for a ``(~)`` entry);
- a push or branch write (``git.push``, ``git.branch.*``, ``git.merge``, ``git.rebase``,
  other ``*.push`` / ``*.write`` kinds naming branches, ``git push`` in a shell command) to a
  branch outside ``push_to``, or whose target cannot be told → ``HARNESS-DRIFT-001``,
  ``branch_constraint`` (ATT&CK T1565.001);
- ``branch_constraints.forbid``: ``force_push`` (``force``-like arguments, ``+refspec``,
  ``git push -f/--force*``), ``reset_hard`` (``git.reset`` with ``mode: hard`` or no telling
  mode, ``git reset --hard``), ``delete_branch`` (``git.branch.delete``, ``delete: true``,
  ``git branch -d/-D``, ``git push --delete`` / ``:branch``), ``rebase_published``
  (``git.rebase``, ``git rebase``, ``git pull --rebase``) → ``MANIFEST-FORBID``,
  ``branch_constraint``.

Budgets are parsed into :class:`Budget` (``bytes_out``: an int or ``<n> B|KB|MB|GB|KiB|MiB|
GiB``; ``duration``: ``<n>h<n>m<n>s`` parts such as ``45m``, ``1h30m``) and enforced by the
ledger, not here.
"""

from trackwrap.manifest._envelope import (
    PAYLOAD_TYPE,
    VerifiedManifest,
    sign_manifest,
    verify_manifest,
)
from trackwrap.manifest._model import (
    BRANCH_FORBIDS,
    Attestation,
    BranchConstraints,
    Budget,
    Manifest,
    parse_manifest,
    parse_template,
)
from trackwrap.manifest._roles import (
    default_roles_dir,
    load_role_template,
    new_manifest,
    role_names,
)
from trackwrap.manifest._scope import (
    HARNESS_DRIFT_RULE,
    MANIFEST_FORBID_RULE,
    DriftFinding,
    ManifestScope,
)
from trackwrap.manifest._tools import ArgMode, ToolEntry
from trackwrap.manifest._toolsig import TOOLS_PAYLOAD_TYPE, sign_tool_list, verify_tool_list
from trackwrap.manifest._trust import Approver, Publisher, TrustStore, parse_public_key
from trackwrap.manifest._units import parse_duration, parse_size

__all__ = [
    "BRANCH_FORBIDS",
    "HARNESS_DRIFT_RULE",
    "MANIFEST_FORBID_RULE",
    "PAYLOAD_TYPE",
    "TOOLS_PAYLOAD_TYPE",
    "Approver",
    "ArgMode",
    "Attestation",
    "BranchConstraints",
    "Budget",
    "DriftFinding",
    "Manifest",
    "ManifestScope",
    "Publisher",
    "ToolEntry",
    "TrustStore",
    "VerifiedManifest",
    "default_roles_dir",
    "load_role_template",
    "new_manifest",
    "parse_duration",
    "parse_manifest",
    "parse_public_key",
    "parse_size",
    "parse_template",
    "role_names",
    "sign_manifest",
    "sign_tool_list",
    "verify_manifest",
    "verify_tool_list",
]
