"""Help text shared by the typer app and the fast ``trackwrap --help`` path, the wrapper's
usage line, and the list of subcommands (``main`` uses it to tell a subcommand from ``--``)."""

__all__ = ["COMMANDS", "HELP", "WRAP_USAGE", "fast_help"]

WRAP_USAGE = "trackwrap [--server NAME] [--workspace DIR] [options] -- <upstream command…>"

HELP = f"""Governs every MCP tool call an AI coding agent makes, before it runs.

Put it in front of an MCP server in your IDE's config:

\b
  {WRAP_USAGE}

\b
Options before `--`:
  --server NAME        the upstream's profile (default: inferred from the command)
  --workspace DIR      the directory the agent may work in (default: cwd)
  --policy FILE        policy file or directory (repeatable; default: shipped policy)
  --profiles DIR       extra server profiles
  --mode monitor       record what would be denied, but forward it
  --session ID         join this session (default: TRACKWRAP_SESSION, else the
                       workspace's started session, else its implicit one)
  --require-session    deny every call until a session is started for the workspace
  --default-role ROLE  hold implicit sessions to this shipped role's manifest
  --inject-token       put each call's execution token in params._meta
  --approval-wait SEC  hold a call that needs approval this long (default 45, from
                       approvals.yaml), shorter than the client's tool timeout
  --env-allow GLOB     pass only these variables (and PATH, HOME, …) to the upstream
  --env-deny GLOB      never pass these variables to the upstream
  --secret KEY         put the stored token KEY (trackwrap secret set SERVER KEY)
                       into the upstream's environment (repeatable; needs --server)
  --max-line-bytes N   cap on one message (default 128 MiB)
"""

COMMANDS = (
    ("check", "Evaluate one call through the pipeline, without any upstream or recording."),
    ("audit", "Show and verify the audit ledger."),
    ("watch", "A live view of a session's decisions, pending approvals and budget."),
    ("demo", "A scripted agent session against real MCP servers, governed by trackwrap."),
    ("session", "Start, inspect and close governed sessions."),
    ("diagnose", "What happened in a session, in causal order."),
    ("manifest", "Write, sign and verify session manifests."),
    ("trust", "Publisher keys trusted to sign session manifests and tool lists."),
    ("keys", "The device key that seals the ledger and signs tokens."),
    ("pins", "Pinned MCP tool sets: review and approve tool changes."),
    ("approvals", "Calls waiting for a person's approval, and the decisions."),
    ("approve", "Approve a pending call: the same call then goes through, once."),
    ("deny", "Deny a pending call: the agent is told why."),
    ("sync", "Send sealed audit segments to the collector; see what is witnessed."),
    ("config", "trackwrap's settings (the collector's URL; its token goes to the keyring)."),
    ("collector", "The central collector: serve it, its tokens and device keys."),
    ("token", "Execution tokens, for upstreams that check them."),
    ("hook", "Judge an agent's built-in tool call (Claude Code, Codex PreToolUse hook)."),
    ("doctor", "Check that trackwrap is installed, wired into your agents and working."),
    ("install", "Put trackwrap in front of the MCP servers in your clients' configs."),
    ("uninstall", "Give the servers `trackwrap install` wrapped their original commands back."),
    ("secret", "Tokens of wrapped servers, kept in the OS keyring instead of config files."),
    ("version", "Print trackwrap's version."),
)


def fast_help() -> str:
    """``trackwrap --help`` without importing typer or rich (it must answer fast)."""
    body = HELP.replace("\b\n", "")
    lines = ["Usage: trackwrap [OPTIONS] COMMAND [ARGS]...", ""]
    lines += [f"  {line}".rstrip() for line in body.splitlines()]
    lines += ["", "Commands:"]
    lines += [f"  {name:<9} {summary}" for name, summary in COMMANDS]
    lines += ["", "Run `trackwrap COMMAND --help` for a command's options."]
    return "\n".join(lines) + "\n"
