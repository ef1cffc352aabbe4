"""Which charset a fetched body is decoded with: the labels of the WHATWG Encoding Standard only.

The charset comes from an upstream we do not trust, and Python's codec registry holds much more
than text encodings: punycode decodes in quadratic time, rot13/hex/base64/zlib are transforms
that raise on bytes, idna and undefined raise too. So a label is never handed to `codecs.lookup`;
it is looked up in the web's own table, whose codecs are all linear-time C decoders, and
anything else means UTF-8, the web's default.
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Callable

# Decoders hold the GIL for a whole call, so the event loop gets its turn only
# between chunks; and an invalid byte costs up to ~0.5 us through an error
# handler, which keeps one chunk's worst case to a few milliseconds.
CHUNK_BYTES = 16 * 1024

# WHATWG encoding name -> (Python codec, its labels), per https://encoding.spec.whatwg.org/#names-and-labels.
# Where the web's encoding is a superset of the ISO one it is named after, the codec is the superset.
# Left out: "replacement" and "x-user-defined", which have no Python codec.
_ENCODINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "utf-8": ("utf-8", ("unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8")),
    "ibm866": ("cp866", ("866", "cp866", "csibm866", "ibm866")),
    "iso-8859-2": ("iso8859-2", (
        "csisolatin2", "iso-8859-2", "iso-ir-101", "iso8859-2", "iso88592", "iso_8859-2", "iso_8859-2:1987", "l2",
        "latin2")),
    "iso-8859-3": ("iso8859-3", (
        "csisolatin3", "iso-8859-3", "iso-ir-109", "iso8859-3", "iso88593", "iso_8859-3", "iso_8859-3:1988", "l3",
        "latin3")),
    "iso-8859-4": ("iso8859-4", (
        "csisolatin4", "iso-8859-4", "iso-ir-110", "iso8859-4", "iso88594", "iso_8859-4", "iso_8859-4:1988", "l4",
        "latin4")),
    "iso-8859-5": ("iso8859-5", (
        "csisolatincyrillic", "cyrillic", "iso-8859-5", "iso-ir-144", "iso8859-5", "iso88595", "iso_8859-5",
        "iso_8859-5:1988")),
    "iso-8859-6": ("iso8859-6", (
        "arabic", "asmo-708", "csiso88596e", "csiso88596i", "csisolatinarabic", "ecma-114", "iso-8859-6",
        "iso-8859-6-e", "iso-8859-6-i", "iso-ir-127", "iso8859-6", "iso88596", "iso_8859-6", "iso_8859-6:1987")),
    "iso-8859-7": ("iso8859-7", (
        "csisolatingreek", "ecma-118", "elot_928", "greek", "greek8", "iso-8859-7", "iso-ir-126", "iso8859-7",
        "iso88597", "iso_8859-7", "iso_8859-7:1987", "sun_eu_greek")),
    "iso-8859-8": ("iso8859-8", (
        "csiso88598e", "csisolatinhebrew", "hebrew", "iso-8859-8", "iso-8859-8-e", "iso-ir-138", "iso8859-8",
        "iso88598", "iso_8859-8", "iso_8859-8:1988", "visual")),
    # Same bytes as iso-8859-8; only the display order differs.
    "iso-8859-8-i": ("iso8859-8", ("csiso88598i", "iso-8859-8-i", "logical")),
    "iso-8859-10": ("iso8859-10", (
        "csisolatin6", "iso-8859-10", "iso-ir-157", "iso8859-10", "iso885910", "l6", "latin6")),
    "iso-8859-13": ("iso8859-13", ("iso-8859-13", "iso8859-13", "iso885913")),
    "iso-8859-14": ("iso8859-14", ("iso-8859-14", "iso8859-14", "iso885914")),
    "iso-8859-15": ("iso8859-15", ("csisolatin9", "iso-8859-15", "iso8859-15", "iso885915", "iso_8859-15", "l9")),
    "iso-8859-16": ("iso8859-16", ("iso-8859-16",)),
    "koi8-r": ("koi8-r", ("cskoi8r", "koi", "koi8", "koi8-r", "koi8_r")),
    "koi8-u": ("koi8-u", ("koi8-ru", "koi8-u")),
    "macintosh": ("mac-roman", ("csmacintosh", "mac", "macintosh", "x-mac-roman")),
    "windows-874": ("cp874", ("dos-874", "iso-8859-11", "iso8859-11", "iso885911", "tis-620", "windows-874")),
    "windows-1250": ("cp1250", ("cp1250", "windows-1250", "x-cp1250")),
    "windows-1251": ("cp1251", ("cp1251", "windows-1251", "x-cp1251")),
    # Servers that say Latin-1 or ASCII send windows-1252, hence the web's mapping.
    "windows-1252": ("cp1252", (
        "ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819", "iso-8859-1", "iso-ir-100",
        "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1", "latin1", "us-ascii", "windows-1252",
        "x-cp1252")),
    "windows-1253": ("cp1253", ("cp1253", "windows-1253", "x-cp1253")),
    "windows-1254": ("cp1254", (
        "cp1254", "csisolatin5", "iso-8859-9", "iso-ir-148", "iso8859-9", "iso88599", "iso_8859-9",
        "iso_8859-9:1989", "l5", "latin5", "windows-1254", "x-cp1254")),
    "windows-1255": ("cp1255", ("cp1255", "windows-1255", "x-cp1255")),
    "windows-1256": ("cp1256", ("cp1256", "windows-1256", "x-cp1256")),
    "windows-1257": ("cp1257", ("cp1257", "windows-1257", "x-cp1257")),
    "windows-1258": ("cp1258", ("cp1258", "windows-1258", "x-cp1258")),
    "x-mac-cyrillic": ("mac-cyrillic", ("x-mac-cyrillic", "x-mac-ukrainian")),
    "gbk": ("gb18030", (
        "chinese", "csgb2312", "csiso58gb231280", "gb2312", "gb_2312", "gb_2312-80", "gbk", "iso-ir-58", "x-gbk")),
    "gb18030": ("gb18030", ("gb18030",)),
    "big5": ("big5hkscs", ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5")),
    "euc-jp": ("euc_jp", ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp")),
    "iso-2022-jp": ("iso2022_jp", ("csiso2022jp", "iso-2022-jp")),
    "shift_jis": ("cp932", (
        "csshiftjis", "ms932", "ms_kanji", "shift-jis", "shift_jis", "sjis", "windows-31j", "x-sjis")),
    "euc-kr": ("cp949", (
        "cseuckr", "csksc56011987", "euc-kr", "iso-ir-149", "korean", "ks_c_5601-1987", "ks_c_5601-1989",
        "ksc5601", "ksc_5601", "windows-949")),
    "utf-16be": ("utf-16-be", ("unicodefffe", "utf-16be")),
    "utf-16le": ("utf-16-le", (
        "csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le")),
}

CODECS: dict[str, str] = {label: codec for codec, labels in _ENCODINGS.values() for label in labels}
_MULTI_BYTE = {"utf-8", "utf-16-be", "utf-16-le", "gb18030", "big5hkscs", "euc_jp", "cp932", "cp949"}

# A byte order mark outranks the label, as in the standard's decode algorithm.
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"))


def charset_param(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type, as sent (RFC 2231 forms are not honoured)."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, eq, value = param.partition("=")
        if eq and name.strip().lower() == "charset":
            return value
    return None


def codec_for(label: str | None) -> str:
    """The Python codec for a charset label; UTF-8 for anything that is not a web text encoding."""
    if label is None:
        return "utf-8"
    return CODECS.get(label.strip(" \t\r\n\f\"'").lower(), "utf-8")


def decode(data: bytes, content_type: str | None) -> str:
    """Linear in len(data), in steps of CHUNK_BYTES; invalid bytes become U+FFFD."""
    codec, start = codec_for(charset_param(content_type)), 0
    for bom, bom_codec in _BOMS:
        if data.startswith(bom):
            codec, start = bom_codec, len(bom)
            break
    if codec == "iso2022_jp":
        # Its incremental decoder gives up ("pending buffer overflow") on a run
        # of broken escapes; whole, it stays linear (~50 ms for a hostile MiB).
        return data[start:].decode(codec, errors="replace")
    step = _decoder(codec)
    parts = [step(data[i:i + CHUNK_BYTES], False) for i in range(start, len(data), CHUNK_BYTES)]
    parts.append(step(b"", True))
    return "".join(parts)


def _decoder(codec: str) -> Callable[[bytes, bool], str]:
    if codec in _MULTI_BYTE:
        return codecs.getincrementaldecoder(codec)(errors="replace").decode
    table = _byte_table(codec)
    return lambda chunk, final: codecs.charmap_decode(chunk, "strict", table)[0]


@functools.cache
def _byte_table(codec: str) -> str:
    # Undefined bytes mapped to U+FFFD up front: through the "replace" handler
    # each one would cost a hundred times a defined byte.
    return "".join(bytes([b]).decode(codec, errors="replace") for b in range(256))
