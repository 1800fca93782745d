"""Signed links: a link opens exactly the resource and camera it was made for until it expires; any
change to it (hypothesis over tampered query strings), another key, or expiry refuses it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtsp2jpg.web import links
from rtsp2jpg.web.links import LinkError, link_key, make, verify

KEY = link_key("", "the-api-key")
NOW = 1_800_000_000.0
WEEK = 7 * 86400


def query(url: str) -> tuple[str, str]:
    q = parse_qs(urlsplit(url).query)
    return q["exp"][0], q["sig"][0]


def test_a_link_opens_its_resource_until_it_expires():
    url, exp = make(KEY, "snapshot", "front-door", 3600, NOW)
    assert url.startswith("/snapshot/front-door?exp=") and exp == NOW + 3600
    verify(KEY, "snapshot", "front-door", *query(url), WEEK, NOW + 3599)
    with pytest.raises(LinkError) as e:
        verify(KEY, "snapshot", "front-door", *query(url), WEEK, NOW + 3601)
    assert e.value.status == 401 and "expired" in str(e.value)


@pytest.mark.parametrize("kind,camera", [("stream", "front-door"), ("snapshot", "back-door")])
def test_a_link_opens_nothing_else(kind, camera):
    url, _ = make(KEY, "snapshot", "front-door", 3600, NOW)
    with pytest.raises(LinkError) as e:
        verify(KEY, kind, camera, *query(url), WEEK, NOW)
    assert e.value.status == 403


def test_rotating_the_api_key_or_setting_a_link_secret_revokes_links():
    url, _ = make(KEY, "snapshot", "cam", 3600, NOW)
    for other in (link_key("", "new-api-key"), link_key("a-link-secret", "the-api-key")):
        with pytest.raises(LinkError):
            verify(other, "snapshot", "cam", *query(url), WEEK, NOW)
    assert link_key("", "") is None
    with pytest.raises(LinkError):
        verify(None, "snapshot", "cam", *query(url), WEEK, NOW)


def test_lowering_the_max_ttl_stops_longer_links():
    url, _ = make(KEY, "snapshot", "cam", WEEK, NOW)
    verify(KEY, "snapshot", "cam", *query(url), WEEK, NOW)
    with pytest.raises(LinkError):
        verify(KEY, "snapshot", "cam", *query(url), 3600, NOW)


@given(exp=st.one_of(st.none(), st.text(max_size=20)), sig=st.one_of(st.none(), st.text(max_size=80)))
def test_any_made_up_query_is_refused(exp, sig):
    with pytest.raises(LinkError) as e:
        verify(KEY, "snapshot", "cam", exp, sig, WEEK, NOW)
    assert e.value.status in (401, 403)


@given(st.data())
def test_any_change_to_a_real_link_is_refused(data):
    url, _ = make(KEY, "snapshot", "cam", 3600, NOW)
    exp, sig = query(url)
    which = data.draw(st.sampled_from(["exp", "sig"]))
    value = exp if which == "exp" else sig
    pos = data.draw(st.integers(0, len(value)))
    cut = data.draw(st.integers(0, 2))
    insert = data.draw(st.text(alphabet="0123456789abcdefABCDEF-_=", max_size=3))
    changed = value[:pos] + insert + value[pos + cut:]
    if changed == value:
        return
    with pytest.raises(LinkError):
        if which == "exp":
            verify(KEY, "snapshot", "cam", changed, sig, WEEK, NOW)
        else:
            verify(KEY, "snapshot", "cam", exp, changed, WEEK, NOW)


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800),
                                          ("1.5h", 5400)])
def test_parse_ttl(text, seconds):
    assert links.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "1y", "-1h", "h", "1 h h"])
def test_parse_ttl_rejects(text):
    with pytest.raises(ValueError):
        links.parse_ttl(text)


def test_another_spelling_of_the_expiry_is_refused():
    url, _ = make(KEY, "snapshot", "cam", 3600, NOW)
    exp, sig = query(url)
    for spelling in ("0" + exp, " " + exp, exp + " ", "+" + exp):
        with pytest.raises(LinkError):
            verify(KEY, "snapshot", "cam", spelling, sig, WEEK, NOW)
