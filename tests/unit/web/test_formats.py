"""Format negotiation: extension first, then Accept; JPEG by default; any header is an answer or a 406."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtsp2jpg.web.formats import FORMATS, NotAcceptable, negotiate


@pytest.mark.parametrize("accept,fmt", [
    (None, "jpeg"), ("", "jpeg"), ("*/*", "jpeg"), ("image/*", "jpeg"), ("application/json", "jpeg"),
    ("image/webp", "webp"), ("image/png", "png"), ("image/png;q=0.5, image/webp;q=0.6", "webp"),
    ("image/webp;q=0, */*", "jpeg"), ("image/jpeg;q=0, image/*;q=0.5", "webp"),
    ("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "jpeg"),  # a browser's <img>
    ("image/webp,image/*;q=0.8", "webp"), ("image/png,image/webp", "webp"),
    ("IMAGE/PNG", "png"), ("image/png;q=nan, image/jpeg;q=0.1", "jpeg"),
])
def test_negotiate(accept, fmt):
    assert negotiate(accept) == fmt


def test_everything_excluded_is_not_acceptable():
    with pytest.raises(NotAcceptable):
        negotiate("image/*;q=0")


@given(st.text(max_size=300))
def test_any_header_gives_a_format_or_not_acceptable(accept):
    try:
        assert negotiate(accept) in FORMATS
    except NotAcceptable:
        pass
