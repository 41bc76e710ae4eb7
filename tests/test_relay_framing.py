from __future__ import annotations

import pytest

from trackwrap.errors import SpawnError
from trackwrap.relay import LineSplitter, Oversize, child_environment, dumps, resolve_command


def test_splits_on_newline_byte_only_and_keeps_u2028():
    s = LineSplitter(1024)
    line = '{"a":"x\u2028y\u2029z\x85"}'.encode()
    assert s.feed(line + b"\n{") == [line]
    assert s.feed(b'"b":1}\r\n') == [b'{"b":1}\r']


def test_chunked_line_reassembles():
    s = LineSplitter(1024)
    out: list[bytes | Oversize] = []
    for ch in b'{"method":"ping","id":1}\n':
        out += s.feed(bytes([ch]))
    assert out == [b'{"method":"ping","id":1}']


def test_final_unterminated_line_is_flushed_at_eof():
    s = LineSplitter(1024)
    assert s.feed(b'{"id":1}') == []
    assert s.finish() == [b'{"id":1}']
    assert s.finish() == []


def test_oversize_line_is_reported_once_and_discarded_until_newline():
    s = LineSplitter(10)
    assert s.feed(b"x" * 8) == []
    assert s.feed(b"x" * 8) == [Oversize(16)]
    assert s.feed(b"y" * 100) == []
    assert s.feed(b"zz\n{}\n") == [b"{}"]


def test_oversize_line_within_one_chunk():
    s = LineSplitter(10)
    assert s.feed(b"a" * 11 + b"\n" + b"ok\n") == [Oversize(11), b"ok"]


def test_line_exactly_at_cap_passes():
    s = LineSplitter(10)
    assert s.feed(b"a" * 10 + b"\n") == [b"a" * 10]


def test_dumps_is_compact_utf8_and_survives_lone_surrogates():
    assert dumps({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}'.encode()
    assert dumps({"s": "\ud800"}) == b'{"s":"\\ud800"}'


def test_child_environment_drops_trackwrap_variables():
    env = {"PATH": "/bin", "TRACKWRAP_HOME": "/h", "TRACKWRAP_COLLECTOR_TOKEN": "t",
           "GITHUB_PERSONAL_ACCESS_TOKEN": "g"}
    assert child_environment(env) == {"PATH": "/bin", "GITHUB_PERSONAL_ACCESS_TOKEN": "g"}


def test_child_environment_allow_and_deny_lists():
    env = {"PATH": "/bin", "HOME": "/home/u", "GITHUB_TOKEN": "g", "AWS_SECRET": "s",
           "LANG": "C"}
    assert child_environment(env, allow=["GITHUB_*"]) == {
        "PATH": "/bin", "HOME": "/home/u", "GITHUB_TOKEN": "g", "LANG": "C"}
    assert child_environment(env, deny=["AWS_*", "LANG"]) == {
        "PATH": "/bin", "HOME": "/home/u", "GITHUB_TOKEN": "g"}


def test_missing_command_names_it_and_the_path(tmp_path):
    with pytest.raises(SpawnError) as info:
        resolve_command(["no-such-server-xyz", "--flag"], path=str(tmp_path))
    assert info.value.exit_code == 127
    assert "no-such-server-xyz" in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_command_argv_is_verbatim(tmp_path):
    exe = tmp_path / "srv"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert resolve_command(["srv", "a b", "'c'", "$HOME"], path=str(tmp_path)) == [
        str(exe), "a b", "'c'", "$HOME"]
