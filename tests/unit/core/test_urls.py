"""Only plain rtsp:// and rtsps:// URLs pass; passwords are redacted wherever text leaves the process."""

from __future__ import annotations

import pytest

from rtsp2jpg.urls import UrlError, redact, split_credentials, validate_rtsp_url


@pytest.mark.parametrize("url", [
    "rtsp://10.0.0.1/stream", "rtsps://cam.local:322/a/b?x=1", "RTSP://host:554/", "rtsp://u:p%40ss@h:8554/s",
    "rtsp://[::1]:8554/cam",
])
def test_accepted(url: str) -> None:
    assert validate_rtsp_url(url) == url


@pytest.mark.parametrize(("url", "why"), [
    ("", "non-empty"), (None, "non-empty"), (5, "non-empty"),
    ("http://h/x", "rtsp://"), ("file:///etc/passwd", "rtsp://"), ("rtspx://h/", "rtsp://"),
    ("videotestsrc ! appsink", "rtsp://"), ("rtsp:/h/x", "host"), ("rtsp://", "host"),
    ("rtsp://h/x y", "spaces"), ('rtsp://h/x"', "quotes"), ("rtsp://h/x'", "quotes"),
    ("rtsp://h/x ! filesrc location=/etc/passwd", "spaces"), ("rtsp://h/x!y", "'!'"),
    ("rtsp://h/x\\y", "backslash"), ("rtsp://h/x\r\nHost: evil", "control"), ("rtsp://h:99999/x", "port"),
    ("rtsp://h:0/x", "port"), ("rtsp://h/" + "a" * 3000, "at most"),
])
def test_rejected(url: object, why: str) -> None:
    with pytest.raises(UrlError) as err:
        validate_rtsp_url(url)
    assert why in str(err.value)


def test_redact_hides_passwords_in_any_text() -> None:
    text = ("open rtsp://admin:hunter2@10.0.0.1:554/s failed; retry rtsps://v:p%40ss%2Fw@cam/x and "
            "rtsp://nouser@h/ and rtsp://h:554/plain")
    out = redact(text)
    assert "hunter2" not in out and "p%40ss" not in out
    assert "rtsp://admin:***@10.0.0.1:554/s" in out
    assert "rtsps://v:***@cam/x" in out
    assert "rtsp://nouser@h/" in out and "rtsp://h:554/plain" in out


@pytest.mark.parametrize(("text", "shown"), [
    # A raw '@' in the password: userinfo ends at the LAST '@' of the authority, as every connector reads it.
    ("rtsp://admin:ter2Secret@x@10.0.0.5/s", "rtsp://admin:***@10.0.0.5/s"),
    ("rtsp://admin:p@ss:w@rd@host:554/x", "rtsp://admin:***@host:554/x"),
    # An '@' after the authority is not userinfo: the host stays visible.
    ("rtsp://10.0.0.1:554/path@x", "rtsp://10.0.0.1:554/***@x"),
    ("rtsp://h/cam?user=admin&password=Secr3t&channel=1", "rtsp://h/cam?user=admin&password=***&channel=1"),
    ("rtsp://h/user=admin_password=X1_channel=1_stream=0.sdp", "rtsp://h/user=admin_password=***_channel=1_stream=0.sdp"),
])
def test_redact_real_camera_url_forms(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_percent_encoded_control_characters_are_rejected() -> None:
    for url in ("rtsp://ad%0D%0Amin:p@h/", "rtsp://u:p%0d%0aX-Evil:%201@h/", "rtsp://h/a%00b", "rtsp://h/%7F"):
        with pytest.raises(UrlError, match="control characters"):
            validate_rtsp_url(url)


def test_split_credentials() -> None:
    assert split_credentials("rtsp://u:p%40x@h:1/s") == ("rtsp://h:1/s", "u", "p%40x")
    assert split_credentials("rtsp://h/s") == ("rtsp://h/s", None, None)
    assert split_credentials("rtsp://u@h/s") == ("rtsp://h/s", "u", None)
