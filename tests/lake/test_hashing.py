"""laion_hash equals LAION's mmh3.hash64((URL or "") + (TEXT or ""))[0] on every kind of input."""

from __future__ import annotations

import mmh3
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laion_spark.lake.hashing import laion_hash

LAION_EXAMPLE_URL = (
    "http://1.bp.blogspot.com/-4nSga1sbduI/UDT3Q1H9dzI/AAAAAAAABWE/O7_lyFGjmU0/s1600/"
    "Vintage+Wedding+Table+Decorations+Pictures.jpg"
)


def reference(url: str | None, text: str | None) -> int:
    """LAION's own formula, one row at a time."""
    return mmh3.hash64(((url or "") + (text or "")).encode("utf-8"))[0]


def hashed(urls: list[str | None], texts: list[str | None]) -> list[int]:
    return laion_hash(pa.array(urls, pa.string()), pa.array(texts, pa.string())).tolist()


def _at_most_200_bytes(text: str) -> str:
    while len(text.encode("utf-8")) > 200:
        text = text[:-1]
    return text


utf8_text = st.text(st.characters(codec="utf-8"), max_size=200).map(_at_most_200_bytes)


def test_laion_published_example_hashes_to_their_value():
    assert hashed([LAION_EXAMPLE_URL], ["Cake Table Decoration Ideas"]) == [4623837408423549118]


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("https://example.com/caf\u00e9.jpg", "Cr\u00e8me br\u00fbl\u00e9e \u00fcber alles"),
        ("https://example.jp/\u753b\u50cf.png", "\u65e5\u672c\u8a9e\u306e\u30ad\u30e3\u30d7\u30b7\u30e7\u30f3"),
        ("http://x.ru/a.jpg", "\u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442"),
        ("http://e.mo/ji.gif", "party \U0001f389\U0001f973 family \U0001f468\u200d\U0001f469\u200d\U0001f467"),
        (None, "only a caption"),
        ("http://only.a/url.jpg", None),
        (None, None),
        ("", ""),
        ("", "x"),
    ],
    ids=["latin1", "cjk", "cyrillic", "emoji", "null-url", "null-text", "both-null", "both-empty", "empty-url"],
)
def test_hash_equals_mmh3_on_non_ascii_emoji_null_and_empty(url, text):
    assert hashed([url], [text]) == [reference(url, text)]


def test_hash_equals_mmh3_for_every_length_around_the_16_byte_blocks():
    texts = ["a" * n for n in range(0, 50)]
    assert hashed([None] * len(texts), texts) == [reference(None, t) for t in texts]


def test_hash_of_sliced_chunked_and_large_string_arrays_equals_mmh3():
    urls = [f"http://h/{i}\u00e9" for i in range(10)]
    texts = [None if i % 3 == 0 else "t" * i for i in range(10)]
    expected = [reference(u, t) for u, t in zip(urls, texts, strict=True)]
    url_arr, text_arr = pa.array(urls), pa.array(texts, pa.string())
    assert laion_hash(url_arr.slice(3, 5), text_arr.slice(3, 5)).tolist() == expected[3:8]
    chunked = laion_hash(pa.chunked_array([url_arr[:4], url_arr[4:]]), pa.chunked_array([text_arr[:7], text_arr[7:]]))
    assert chunked.tolist() == expected
    large = laion_hash(url_arr.cast(pa.large_string()), text_arr.cast(pa.large_string()))
    assert large.dtype == np.int64 and large.tolist() == expected


def test_hash_of_an_empty_batch_is_empty():
    assert laion_hash(pa.array([], pa.string()), pa.array([], pa.string())).shape == (0,)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.none() | utf8_text, st.none() | utf8_text), min_size=1, max_size=20))
def test_hash_equals_mmh3_on_random_unicode_of_0_to_200_bytes(pairs):
    urls = [u for u, _ in pairs]
    texts = [t for _, t in pairs]
    assert hashed(urls, texts) == [reference(u, t) for u, t in pairs]
