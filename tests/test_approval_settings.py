"""approvals.yaml: strict parsing, durations, channels and secret references."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackwrap.approvals import (
    ApprovalSettings,
    Channel,
    load_approval_settings,
    parse_approval_settings,
)
from trackwrap.errors import ProfileError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - a test secret
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXX"

EXAMPLE = f"""\
version: 1
wait: 45s
progress_every: 5s
notify: [ops]
channels:
  ops:
    type: webhook
    url: https://hooks.example.com/trackwrap
    secret: {SECRET}
  ops-slack:
    type: slack
    url: {SLACK_URL}
  sec:
    type: webhook
    url: http://10.0.0.5:8080/hook
    secret_env: TRACKWRAP_SEC_WEBHOOK_SECRET
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "approvals.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def parse(data: object, environ: dict[str, str] | None = None) -> ApprovalSettings:
    return parse_approval_settings(data, source="approvals.yaml", environ=environ or {})


def document(**top: object) -> dict[str, object]:
    return {"version": 1, **top}


def test_the_example_file_loads(tmp_path: Path) -> None:
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    settings = load_approval_settings(
        write(tmp_path, EXAMPLE), environ={"TRACKWRAP_SEC_WEBHOOK_SECRET": f"{other}\n"}
    )
    assert settings.wait_s == 45.0
    assert settings.progress_s == 5.0
    assert settings.notify == ("ops",)
    assert dict(settings.channels) == {
        "ops": Channel("ops", "webhook", "https://hooks.example.com/trackwrap", SECRET),
        "ops-slack": Channel("ops-slack", "slack", SLACK_URL),
        "sec": Channel("sec", "webhook", "http://10.0.0.5:8080/hook", other),
    }
    with pytest.raises(TypeError):
        settings.channels["x"] = settings.channels["ops"]  # type: ignore[index]


def test_missing_and_empty_files_give_defaults(tmp_path: Path) -> None:
    assert load_approval_settings(tmp_path / "absent.yaml", environ={}) == ApprovalSettings()
    assert load_approval_settings(write(tmp_path, ""), environ={}) == ApprovalSettings()
    defaults = parse(None)
    assert (defaults.wait_s, defaults.progress_s, defaults.notify) == (45.0, 5.0, ())
    assert dict(defaults.channels) == {}
    assert parse(document()) == ApprovalSettings()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (2.5, 2.5),
        ("30s", 30.0),
        ("2m", 120.0),
        ("1m30s", 90.0),
        ("10m", 600.0),
        (" 1.5s ", 1.5),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse(document(wait=value)).wait_s == seconds
    assert parse(document(progress_every=value)).progress_s == seconds


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, "more than zero"),
        (-5, "more than zero"),
        ("0s", "more than zero"),
        ("30", 'like "30s"'),
        ("1h", 'like "30s"'),
        ("soon", 'like "30s"'),
        (True, 'like "30s"'),
        (None, 'like "30s"'),
        ("11m", "at most 10m"),
        (601, "at most 10m"),
        (float("inf"), "finite number of seconds"),
        (float("nan"), "finite number of seconds"),
    ],
)
def test_bad_wait(value: object, problem: str) -> None:
    with pytest.raises(ProfileError, match=problem) as caught:
        parse(document(wait=value))
    assert str(caught.value).startswith("approvals.yaml: wait: ")


def test_progress_has_no_upper_bound_but_must_be_positive() -> None:
    assert parse(document(progress_every="10m", wait="30s")).progress_s == 600.0
    with pytest.raises(ProfileError, match=r"progress_every: must be more than zero"):
        parse(document(progress_every=0))
    with pytest.raises(ProfileError, match=r"progress_every: expected a finite number"):
        parse(document(progress_every=float("inf")))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], r"\(document\): expected a mapping"),
        ({}, r"missing required key 'version'"),
        (document(version=2), r"version: unsupported version 2"),
        ({"version": True}, r"version: unsupported version True"),
        (document(waiting="30s"), r"waiting: unknown key 'waiting'"),
        (document(channels=[]), r"channels: expected a mapping"),
        (document(channels={"Ops": {}}), r"channels\.Ops: 'Ops' is not a channel name"),
        (document(channels={"-x": {}}), r"'-x' is not a channel name"),
        (document(channels={"ops": "https://x"}), r"channels\.ops: expected a mapping"),
        (
            document(channels={"ops": {"type": "slack", "url": "https://h/x", "token": "t"}}),
            r"channels\.ops\.token: unknown key 'token'",
        ),
        (
            document(channels={"ops": {"url": "https://h/x"}}),
            r"channels\.ops: missing required key 'type'",
        ),
        (
            document(channels={"ops": {"type": "email", "url": "https://h/x"}}),
            r"channels\.ops\.type: unknown type 'email'",
        ),
        (
            document(channels={"ops": {"type": "slack", "url": "ftp://h/x"}}),
            r"channels\.ops\.url: expected an http:// or https:// URL",
        ),
        (
            document(channels={"ops": {"type": "slack", "url": "https://"}}),
            r"channels\.ops\.url: expected an http:// or https:// URL with a host",
        ),
        (
            document(channels={"ops": {"type": "slack", "url": "hooks.slack.com/x"}}),
            r"channels\.ops\.url: expected an http",
        ),
        (
            document(channels={"ops": {"type": "slack", "url": "https://h:port/x"}}),
            r"channels\.ops\.url: not a valid URL",
        ),
        (
            document(channels={"ops": {"type": "slack", "url": "https://h/a b"}}),
            r"channels\.ops\.url: a URL cannot contain spaces",
        ),
        (
            document(channels={"ops": {"type": "slack", "url": SLACK_URL, "secret": SECRET}}),
            r"channels\.ops\.secret: a slack channel takes no secret",
        ),
        (
            document(channels={"ops": {"type": "webhook", "url": "https://h/x"}}),
            r"channels\.ops: a webhook channel needs secret or secret_env",
        ),
        (
            document(
                channels={
                    "ops": {
                        "type": "webhook",
                        "url": "https://h/x",
                        "secret": SECRET,
                        "secret_env": "X",
                    }
                }
            ),
            r"channels\.ops\.secret_env: give either secret or secret_env",
        ),
        (
            document(
                channels={"ops": {"type": "webhook", "url": "https://h/x", "secret_env": "A-B"}}
            ),
            r"channels\.ops\.secret_env: 'A-B' is not an environment variable name",
        ),
        (document(notify="ops"), r"notify: expected a list"),
        (document(notify=["ops"]), r"notify\[0\]: no channel named 'ops' \(defined: none\)"),
    ],
)
def test_bad_documents(data: object, problem: str) -> None:
    with pytest.raises(ProfileError, match=problem) as caught:
        parse(data)
    assert str(caught.value).startswith("approvals.yaml: ")


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
        ("whsec_***notbase64***", "not valid base64"),
        ("whsec_", "empty"),
    ],
)
def test_bad_inline_secrets_are_named_but_not_echoed(secret: str, problem: str) -> None:
    data = document(channels={"ops": {"type": "webhook", "url": "https://h/x", "secret": secret}})
    with pytest.raises(ProfileError, match=problem) as caught:
        parse(data)
    message = str(caught.value)
    assert "channels.ops.secret: the secret: " in message
    if secret.removeprefix("whsec_"):
        assert secret.removeprefix("whsec_") not in message


def test_secret_env_is_resolved_from_the_given_environment() -> None:
    data = document(
        channels={"ops": {"type": "webhook", "url": "https://h/x", "secret_env": "OPS_SECRET"}},
        notify=["ops"],
    )
    settings = parse(data, {"OPS_SECRET": SECRET})
    assert settings.channels["ops"].secret == SECRET
    with pytest.raises(ProfileError, match="the environment variable OPS_SECRET is not set"):
        parse(data, {})
    with pytest.raises(ProfileError, match="the environment variable OPS_SECRET is not set"):
        parse(data, {"OPS_SECRET": "  "})
    with pytest.raises(ProfileError) as caught:
        parse(data, {"OPS_SECRET": "plain-password"})
    assert "the environment variable OPS_SECRET: a webhook secret must start with" in str(
        caught.value
    )
    assert "plain-password" not in str(caught.value)


def test_notify_names_must_be_defined_once() -> None:
    channels = {"ops": {"type": "slack", "url": SLACK_URL}}
    with pytest.raises(
        ProfileError, match=r"notify\[1\]: no channel named 'pager' \(defined: ops\)"
    ):
        parse(document(channels=channels, notify=["ops", "pager"]))
    with pytest.raises(ProfileError, match=r"notify\[1\]: channel 'ops' is listed twice"):
        parse(document(channels=channels, notify=["ops", "ops"]))


def test_file_errors_name_the_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace("    type: slack\n", "    type: slack\n    extra: 1\n"))
    with pytest.raises(ProfileError) as caught:
        load_approval_settings(path, environ={"TRACKWRAP_SEC_WEBHOOK_SECRET": SECRET})
    assert str(caught.value).startswith(f"{path}:12: channels.ops-slack.extra: unknown key")
    with pytest.raises(ProfileError, match=r"secret_env: the environment variable"):
        load_approval_settings(write(tmp_path, EXAMPLE), environ={})


def test_invalid_yaml_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"approvals\.yaml:\d+"):
        load_approval_settings(write(tmp_path, "version: 1\nwait: [\n"), environ={})
    with pytest.raises(ProfileError, match="duplicate key"):
        load_approval_settings(write(tmp_path, "version: 1\nwait: 5\nwait: 6\n"), environ={})


def test_unreadable_path_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read the approvals settings"):
        load_approval_settings(tmp_path, environ={})


def test_channels_for_and_unknown(tmp_path: Path) -> None:
    settings = load_approval_settings(
        write(tmp_path, EXAMPLE), environ={"TRACKWRAP_SEC_WEBHOOK_SECRET": SECRET}
    )
    assert [c.name for c in settings.channels_for([])] == ["ops"]
    assert [c.name for c in settings.channels_for(["sec", "pager", "ops-slack", "sec"])] == [
        "sec",
        "ops-slack",
    ]
    assert settings.unknown(["sec", "pager", "x", "pager"]) == ("pager", "x")
    assert settings.unknown([]) == ()
    assert ApprovalSettings().channels_for([]) == []
