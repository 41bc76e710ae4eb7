"""Result redaction: exact output for a CallToolResult, the input untouched, binary left alone."""

from __future__ import annotations

import base64
import copy
import hashlib
import random
import string

from trackwrap.inspectors._redact import RedactionHit, redact_result, redact_text
from trackwrap.inspectors._secret_rules import DEFAULT_RULES, checksum_token, fingerprint


def rand(seed: int, n: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def sha8(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


PAYLOAD = rand(1, 30)
GITHUB = "ghp_" + PAYLOAD + checksum_token(PAYLOAD)
STRIPE = "sk_live_" + rand(2, 24)
PASSWORD = rand(3, 18)
AWS_ID = "AKIA" + "".join(random.Random(4).choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=16))


def test_call_tool_result_is_redacted_exactly() -> None:
    image = base64.b64encode(random.Random(5).randbytes(3000)).decode()
    wrapped = base64.b64encode(f"token={GITHUB}\n".encode()).decode()
    result = {
        "content": [
            {"type": "text", "text": f"GITHUB_TOKEN={GITHUB}\nSTRIPE={STRIPE}\nok"},
            {"type": "image", "data": image, "mimeType": "image/png"},
            {
                "type": "resource",
                "resource": {
                    "uri": "file:///app/.env",
                    "mimeType": "text/plain",
                    "text": f"DATABASE_URL=postgres://app:{PASSWORD}@db.internal/pay",
                },
            },
            {"type": "text", "text": f"echo {wrapped} | base64 -d"},
        ],
        "structuredContent": {"keys": [{"id": AWS_ID, "note": "AKIAIOSFODNN7EXAMPLE"}]},
        "isError": False,
    }
    original = copy.deepcopy(result)

    redacted, hits = redact_result(result)

    assert redacted == {
        "content": [
            {
                "type": "text",
                "text": f"GITHUB_TOKEN=[REDACTED:github-token:{sha8(GITHUB)}]\n"
                f"STRIPE=[REDACTED:stripe-secret-key:{sha8(STRIPE)}]\nok",
            },
            {"type": "image", "data": image, "mimeType": "image/png"},
            {
                "type": "resource",
                "resource": {
                    "uri": "file:///app/.env",
                    "mimeType": "text/plain",
                    "text": "DATABASE_URL=postgres://app:"
                    f"[REDACTED:connection-string:{sha8(PASSWORD)}]@db.internal/pay",
                },
            },
            {"type": "text", "text": f"echo [REDACTED:github-token:{sha8(GITHUB)}] | base64 -d"},
        ],
        "structuredContent": {
            "keys": [
                {
                    "id": f"[REDACTED:aws-access-key-id:{sha8(AWS_ID)}]",
                    "note": "AKIAIOSFODNN7EXAMPLE",
                }
            ]
        },
        "isError": False,
    }
    assert hits == [
        RedactionHit("github-token", fingerprint(GITHUB), "content[0].text"),
        RedactionHit("stripe-secret-key", fingerprint(STRIPE), "content[0].text"),
        RedactionHit(
            "connection-string",
            fingerprint(PASSWORD, public_prefix=False),
            "content[2].resource.text",
        ),
        RedactionHit("github-token", fingerprint(GITHUB), "content[3].text"),
        RedactionHit("aws-access-key-id", fingerprint(AWS_ID), "structuredContent.keys[0].id"),
    ]
    assert result == original
    assert redacted["content"] is not result["content"]


def test_clean_result_is_an_equal_copy() -> None:
    result = {"content": [{"type": "text", "text": "all tests passed"}], "isError": False}
    redacted, hits = redact_result(result)
    assert (redacted, hits) == (result, [])
    assert redacted is not result


def test_non_mapping_results_and_blobs() -> None:
    assert redact_result(None) == (None, [])
    assert redact_result(["x", 1]) == (["x", 1], [])
    blob = base64.b64encode(f"STRIPE={STRIPE}".encode()).decode()
    resource = {"resource": {"uri": "file:///k", "blob": blob}}
    assert redact_result(resource) == (resource, [])


def test_redact_text_and_custom_rules() -> None:
    text = f"a {GITHUB} b {STRIPE}"
    only_stripe = [rule for rule in DEFAULT_RULES if rule.id == "stripe-secret-key"]
    redacted, hits = redact_text(text, location="log", rules=only_stripe)
    assert redacted == f"a {GITHUB} b [REDACTED:stripe-secret-key:{sha8(STRIPE)}]"
    assert hits == [RedactionHit("stripe-secret-key", fingerprint(STRIPE), "log")]
