"""Secrets inspector: every rule against a true example and benign look-alikes, base64 wrapping,
staged files read through an injected reader, AWS pairing, and no secret ever in a finding.

Test secrets are generated from seeded randomness at run time (no live-looking token is stored
in the repository).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trackwrap.config import RealFileSystem
from trackwrap.inspectors._secret_rules import (
    DEFAULT_RULES,
    SecretRule,
    SecretScanner,
    checksum_token,
    fingerprint,
    shannon_entropy,
)
from trackwrap.inspectors._secrets import SECRETS_RULE, SecretHit, SecretsInspector
from trackwrap.policy import Action, Context, Finding

ALNUM = string.ascii_letters + string.digits
B32 = string.ascii_uppercase + "234567"
B64 = ALNUM + "+/"


def rand(seed: int, n: int, alphabet: str = ALNUM) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


def github_token(seed: int = 1, prefix: str = "ghp_") -> str:
    payload = rand(seed, 30)
    return prefix + payload + checksum_token(payload)


def pem(seed: int = 2, kind: str = "RSA ") -> str:
    lines = "\n".join(rand(seed + i, 64, B64) for i in range(6))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----\n"


def gcp_json(seed: int = 3) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "payments-prod",
            "private_key_id": rand(seed, 40, "0123456789abcdef"),
            "private_key": pem(seed, kind=""),
            "client_email": "ci@payments-prod.iam.gserviceaccount.com",
        },
        indent=2,
    )


AWS_ID = "AKIA" + rand(10, 16, B32)
AWS_SECRET = rand(11, 40, B64)

#: rule id -> text with one secret of that rule.
TRUE_EXAMPLES: dict[str, str] = {
    "private-key-gcp-service-account": gcp_json(),
    "private-key": "key = '''\n" + pem() + "'''\n",
    "aws-access-key-id": f"aws_access_key_id = {AWS_ID}\n",
    "aws-secret-access-key": f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n",
    "github-token": f"export GITHUB_TOKEN={github_token()}\n",
    "github-fine-grained-pat": "gh auth login --with-token github_pat_"
    + rand(12, 22)
    + "_"
    + rand(13, 59),
    "gitlab-pat": "GITLAB_TOKEN: glpat-" + rand(14, 20),
    "stripe-secret-key": 'stripe.api_key = "sk_live_' + rand(15, 24) + '"',
    "slack-token": "SLACK_BOT=xoxb-123456789012-1234567890123-" + rand(16, 24),
    "slack-webhook": "https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/" + rand(17, 24),
    "anthropic-api-key": "ANTHROPIC_API_KEY=sk-ant-api03-" + rand(18, 93) + "AA",
    "openai-api-key": "OPENAI_API_KEY=sk-proj-" + rand(19, 60) + "T3BlbkFJ" + rand(20, 60),
    "openai-legacy-key": "openai.api_key = 'sk-" + rand(21, 20) + "T3BlbkFJ" + rand(22, 20) + "'",
    "google-api-key": "maps_key: AIza" + rand(23, 35),
    "npm-token": "//registry.npmjs.org/:_authToken=" + github_token(24, prefix="npm_"),
    "pypi-token": "password = pypi-AgEIcHlwaS5vcmc" + rand(25, 80),
    "huggingface-token": "HF_TOKEN=hf_" + rand(26, 34, string.ascii_letters),
    "connection-string": "DATABASE_URL=postgres://app:" + rand(27, 18) + "@db.internal:5432/pay",
    "generic-secret-assignment": 'client_secret = "' + rand(28, 24) + '"',
}

BENIGN: dict[str, str] = {
    "prose-akia": "The AKIA prefix marks an AWS access key id; ASIA marks a temporary one.",
    "aws-doc-example": "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "aws-doc-secret": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "stripe-filler": 'STRIPE_KEY = "sk_live_xxxxxxxxxxxxxxxx"',
    "stars": "password: '****************'",
    "uuid": "request_id=123e4567-e89b-12d3-a456-426614174000",
    "git-sha": "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixes the relay",
    "env-ref": 'api_key = "${OPENAI_API_KEY}"',
    "template": "token: {{ secrets.GITHUB_TOKEN }}",
    "placeholder": "password=<your-password-here>",
    "localhost-changeme": "postgres://postgres:changeme@localhost:5432/dev",
    "localhost-password": "mysql://root:password@127.0.0.1/test",
    "doc-host": "https://user:hunter2hunter2@example.com/",
    "code-reference": "password = settings.database.password",
    "function-call": "token = get_token(request)",
    "pem-header-only": 'if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):',
    "short-sk": "run the task-runner with disk-usage flags",
    "github-doc": "tokens look like ghp_ followed by 36 characters",
    "image-blob": '{"type": "image", "data": "'
    + base64.b64encode(random.Random(5).randbytes(30_000)).decode()
    + '"}',
    "base64-prose": "b64: " + base64.b64encode(b"just a friendly note without secrets").decode(),
    "max-tokens": "max_tokens = 4096; token_budget: 120000",
}


def make_action(arguments: Mapping[str, object], *, kind: str = "filesystem.write") -> Action:
    return Action(
        server="filesystem",
        tool="write_file",
        kind=kind,
        arguments=arguments,
        paths=(),
        commands=(),
        command_text=(),
        branches=(),
        urls=(),
        destinations=(),
        action_hash="sha256:0",
    )


def make_context(workspace: Path) -> Context:
    return Context(
        workspace=str(workspace),
        roots=(str(workspace),),
        cwd=str(workspace),
        home=str(workspace.parent),
        now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        fs=RealFileSystem(),
    )


@pytest.fixture
def context(tmp_path: Path) -> Context:
    return make_context(tmp_path)


def rules_found(text: str) -> list[str]:
    return [m.rule for m in SecretScanner().scan(text)]


def test_every_rule_has_a_true_example() -> None:
    ids = [rule.id for rule in DEFAULT_RULES]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(TRUE_EXAMPLES)


@pytest.mark.parametrize("rule", sorted(TRUE_EXAMPLES))
def test_true_example(rule: str) -> None:
    assert rules_found(TRUE_EXAMPLES[rule]) == [rule]


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_look_alike(name: str) -> None:
    assert rules_found(BENIGN[name]) == []


def test_confidences() -> None:
    scanner = SecretScanner()

    def confidence(text: str) -> float:
        (match,) = scanner.scan(text)
        return match.confidence

    assert confidence(TRUE_EXAMPLES["private-key"]) == 0.99
    assert confidence(TRUE_EXAMPLES["github-token"]) == 0.99  # checksum holds
    assert confidence("t=ghp_" + rand(30, 36)) == 0.95  # well-formed, checksum fails
    assert confidence(TRUE_EXAMPLES["aws-access-key-id"]) == 0.9
    assert confidence(TRUE_EXAMPLES["stripe-secret-key"]) == 0.95
    assert confidence(TRUE_EXAMPLES["connection-string"]) == 0.8
    assert confidence(TRUE_EXAMPLES["generic-secret-assignment"]) == 0.6
    assert confidence("k = sk-" + rand(31, 48)) == 0.8  # legacy shape without the marker


def test_checksum_token_is_base62_crc32() -> None:
    assert checksum_token("a" * 30) != checksum_token("b" * 30)
    assert len(checksum_token("x" * 30)) == 6
    assert set(checksum_token(rand(40, 30))) <= set(ALNUM)


def test_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0


def test_rule_table_validation() -> None:
    with pytest.raises(ValueError, match="secret"):
        SecretRule(id="x", keywords=("x",), pattern=__import__("re").compile("x"), confidence=1)
    with pytest.raises(ValueError, match="lower-case"):
        SecretRule(
            id="x",
            keywords=("X",),
            pattern=__import__("re").compile("(?P<secret>x)"),
            confidence=1,
        )
    with pytest.raises(ValueError, match="at least one rule"):
        SecretScanner(())


def test_finding_for_a_write(context: Context) -> None:
    token = github_token()
    content = "import os\n\nTOKEN = '" + token + "'\n"
    findings = SecretsInspector().inspect(
        make_action({"path": "src/settings.py", "content": content}), context
    )
    assert findings == (
        Finding(
            inspector="secrets",
            rule=SECRETS_RULE,
            confidence=0.99,
            detail=f"github-token at arguments.content line 3 (fingerprint {fingerprint(token)})",
            attack="T1552.001",
            owasp="ASI03",
        ),
    )
    assert fingerprint(token) == "ghp_…" + hashlib.sha256(token.encode()).hexdigest()[:8]


def test_private_key_attack_id(context: Context) -> None:
    (finding,) = SecretsInspector().inspect(make_action({"content": pem()}), context)
    assert (finding.attack, finding.confidence) == ("T1552.004", 0.99)


def test_nested_leaves_edits_and_commands(context: Context) -> None:
    arguments = {
        "edits": [{"oldText": "x", "newText": "key = " + AWS_ID}],
        "command": ["curl", "-H", "Authorization: Bearer " + github_token(3)],
        "message": "clean",
        "count": 3,
    }
    hits = SecretsInspector().hits(make_action(arguments), context)
    assert [(h.rule, h.location, h.line) for h in hits] == [
        ("aws-access-key-id", "arguments.edits[0].newText", 1),
        ("github-token", "arguments.command[2]", 1),
    ]


def test_base64_wrapped_secret_is_found(context: Context) -> None:
    token = github_token(4)
    wrapped = base64.b64encode(f"export GITHUB_TOKEN={token}\n".encode()).decode()
    command = f"echo {wrapped} | base64 -d >> ~/.bashrc"
    hits = SecretsInspector().hits(make_action({"command": command}, kind="shell.exec"), context)
    assert hits == (
        SecretHit(
            rule="github-token",
            location="arguments.command",
            line=1,
            fingerprint=fingerprint(token),
            confidence=0.99,
            attack="T1552.001",
            encoded=True,
        ),
    )
    assert "base64-encoded" in hits[0].detail()


def test_base64_is_rescanned_one_level_only() -> None:
    token = github_token(5)
    twice = base64.b64encode(base64.b64encode(f"t={token}".encode())).decode()
    assert SecretScanner().scan("x " + twice) == ()


def test_secret_named_key_is_scanned_as_an_assignment(context: Context) -> None:
    arguments = {
        "env": {"AWS_ACCESS_KEY_ID": AWS_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET},
        "body": {"db_password": rand(50, 20)},
    }
    hits = SecretsInspector().hits(make_action(arguments, kind="net.http"), context)
    assert [(h.rule, h.location, h.confidence) for h in hits] == [
        ("aws-access-key-id", "arguments.env.AWS_ACCESS_KEY_ID", 0.99),
        ("aws-secret-access-key", "arguments.env.AWS_SECRET_ACCESS_KEY", 0.95),
        ("generic-secret-assignment", "arguments.body.db_password", 0.6),
    ]


def test_lone_aws_id_is_point_nine(context: Context) -> None:
    (hit,) = SecretsInspector().hits(make_action({"content": "id=" + AWS_ID}), context)
    assert hit.confidence == 0.9


def test_min_confidence_drops_generic(context: Context) -> None:
    text = TRUE_EXAMPLES["generic-secret-assignment"]
    assert SecretsInspector(min_confidence=0.7).inspect(make_action({"c": text}), context) == ()


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def file_reader(
    root: Path, names: list[str]
) -> tuple[Callable[[Action, Context], Iterable[tuple[str, str]]], list[str]]:
    """A fake staged-content reader over real files (the relay's reader asks git)."""
    calls: list[str] = []

    def read(action: Action, context: Context) -> Iterable[tuple[str, str]]:
        calls.append(action.kind)
        for name in names:
            yield name, (root / name).read_text()

    return read, calls


def test_staged_file_content_is_scanned(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    key = "sk_live_" + rand(60, 24)
    write_files(repo, {"src/app.py": "x = 1\n", "config/prod.env": f"A=1\nSTRIPE={key}\n"})
    read, calls = file_reader(repo, ["src/app.py", "config/prod.env"])
    inspector = SecretsInspector(read)
    action = make_action(
        {"repo_path": str(repo), "files": ["src/app.py", "config/prod.env"]}, kind="git.add"
    )
    findings = inspector.inspect(action, make_context(repo))
    assert [f.detail for f in findings] == [
        f"stripe-secret-key at staged:config/prod.env line 2 (fingerprint {fingerprint(key)})"
    ]
    assert calls == ["git.add"]


def test_reader_only_for_staging_kinds(tmp_path: Path) -> None:
    write_files(tmp_path, {"a.txt": "k=" + AWS_ID})
    read, calls = file_reader(tmp_path, ["a.txt"])
    inspector = SecretsInspector(read)
    assert inspector.inspect(make_action({"path": "a.txt"}), make_context(tmp_path)) == ()
    commit = make_action({"repo_path": str(tmp_path), "message": "wip"}, kind="git.commit")
    assert len(inspector.inspect(commit, make_context(tmp_path))) == 1
    assert calls == ["git.commit"]


def test_reader_failure_propagates(tmp_path: Path) -> None:
    def broken(action: Action, context: Context) -> Iterable[tuple[str, str]]:
        raise OSError("git diff --cached failed")

    with pytest.raises(OSError, match="cached"):
        SecretsInspector(broken).inspect(make_action({}, kind="git.commit"), make_context(tmp_path))


def test_findings_are_capped(context: Context) -> None:
    content = "\n".join("k=AKIA" + rand(100 + i, 16, B32) for i in range(8))
    findings = SecretsInspector(max_findings=3).inspect(make_action({"c": content}), context)
    assert len(findings) == 4
    assert findings[-1].detail == "5 more secrets not listed (aws-access-key-id)"
    with pytest.raises(ValueError, match="max_findings"):
        SecretsInspector(max_findings=0)


def all_fields(finding: Finding) -> str:
    return json.dumps(finding.to_json(), ensure_ascii=False) + repr(finding)


def test_no_secret_ever_appears_in_a_finding(tmp_path: Path) -> None:
    """Property: random secrets of every rule, planted in values, keys, staged files and paths,
    base64-wrapped or not; no finding field carries a secret or any 8-character slice of it."""
    rng = random.Random(2026)
    examples = list(TRUE_EXAMPLES.values())
    secrets = [github_token(seed) for seed in range(200, 210)] + [AWS_ID, AWS_SECRET]
    for round_ in range(40):
        planted = [*rng.sample(examples, 4), rng.choice(secrets)]
        wrapped = base64.b64encode(rng.choice(examples).encode()).decode()
        staged_name = f"cfg/{rng.choice(secrets)}.env"
        write_files(tmp_path, {staged_name: rng.choice(examples)})
        arguments = {
            "content": "\n".join(planted),
            "b64": wrapped,
            rng.choice(secrets): "value",
            "nested": [{"password": rand(round_, 20)}],
        }

        def read(action: Action, context: Context) -> Iterable[tuple[str, str]]:
            yield staged_name, (tmp_path / staged_name).read_text()  # noqa: B023

        findings = SecretsInspector(read).inspect(
            make_action(arguments, kind="git.commit"), make_context(tmp_path)
        )
        assert findings
        text = "".join(all_fields(f) for f in findings)
        for value in [*secrets, rand(round_, 20), *_secret_values(examples)]:
            core = value[4:]
            for i in range(0, max(1, len(core) - 8), 4):
                assert core[i : i + 8] not in text


def _secret_values(examples: list[str]) -> list[str]:
    """The raw secret spans of the examples (via the scanner's spans)."""
    scanner = SecretScanner()
    values: list[str] = []
    for text in examples:
        values.extend(text[m.start : m.end] for m in scanner.scan(text))
    return values
