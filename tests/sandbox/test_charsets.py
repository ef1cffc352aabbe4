"""The charset table of fetched bodies: web labels only, every codec a real text codec, and
decoding in chunks that gives the same text as decoding at once, in linear time."""

from __future__ import annotations

import codecs
import os
import time

import pytest

from odeus_triggers.sandbox.charsets import CHUNK_BYTES, CODECS, charset_param, codec_for, decode

ONE_PER_CODEC = {codec: label for label, codec in sorted(CODECS.items(), reverse=True)}
# Invalid bytes take the slow path of a decoder; random bytes mix every path.
HOSTILE = {
    "random": os.urandom(4 * CHUNK_BYTES + 7),
    "ff": b"\xff" * (4 * CHUNK_BYTES),
    "81": b"\x81" * (4 * CHUNK_BYTES),
    "surrogates": b"\x00\xd8" * (2 * CHUNK_BYTES),
    "escapes": b"\x1b$" * (2 * CHUNK_BYTES),
}


@pytest.mark.parametrize("codec", sorted(ONE_PER_CODEC))
def test_every_codec_is_a_text_codec_and_chunks_change_nothing(codec):
    assert codecs.lookup(codec)._is_text_encoding
    label = ONE_PER_CODEC[codec]
    for data in HOSTILE.values():
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            continue
        assert decode(data, f"text/plain; charset={label}") == data.decode(codec, errors="replace")


@pytest.mark.parametrize("codec", sorted(ONE_PER_CODEC))
def test_a_hostile_mebibyte_decodes_in_well_under_a_second(codec):
    label = ONE_PER_CODEC[codec]
    for data in HOSTILE.values():
        mebibyte = data * (1024 * 1024 // len(data))
        started = time.monotonic()
        decode(mebibyte, f"text/plain; charset={label}")
        assert time.monotonic() - started < 1.0, (codec, data[:4])


@pytest.mark.parametrize(
    ("content_type", "codec"),
    [
        (None, "utf-8"),
        ("application/json", "utf-8"),
        ("text/plain; charset=UTF-8", "utf-8"),
        ('text/plain; CharSet="Shift_JIS"', "cp932"),
        ("text/plain;charset= ' windows-1252 ' ;format=flowed", "cp1252"),
        ("text/plain; charset=latin1", "cp1252"),
        ("text/plain; charset=us-ascii", "cp1252"),
        ("text/plain; charset=gb2312", "gb18030"),
        ("text/plain; charset=utf-16", "utf-16-le"),
        ("text/plain; format=flowed; charset=koi8-r", "koi8-r"),
        ("text/plain; charset*=utf-8''punycode", "utf-8"),
    ]
    + [(f"text/plain; charset={bad}", "utf-8") for bad in (
        "punycode", "rot13", "hex", "base64", "idna", "zlib", "undefined", "utf-7", "utf-32", "latin-1",
        "replacement", "x-user-defined", "iso-2022-kr", "", "'", "\"\"",
    )],
)
def test_labels(content_type, codec):
    assert codec_for(charset_param(content_type)) == codec


def test_a_byte_order_mark_outranks_the_label():
    assert decode(b"\xef\xbb\xbfcaf\xc3\xa9", "text/plain; charset=windows-1252") == "café"
    assert decode(b"\xfe\xff\x00h\x00i", "text/plain; charset=utf-16le") == "hi"
    assert decode(b"\xff\xfeh\x00i\x00", None) == "hi"
