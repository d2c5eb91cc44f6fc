"""The WHATWG Encoding Standard's table of encodings and their labels, as data.

``ENCODINGS`` is the standard's ``encodings.json`` (section 4.2, "Names and
labels"): each encoding's name and every label that means it. Beside each name is
the Python codec that decodes as the standard's decoder does. Where the standard
widened an old encoding (GBK is decoded as gb18030, Big5 as Big5-HKSCS, EUC-KR as
windows-949, Shift_JIS as windows-31J, ISO-8859-1 and ASCII as windows-1252,
ISO-8859-9 as windows-1254, TIS-620 as windows-874) the codec is the wider one.

Two encodings have no Python codec and get one here: ``x-user-defined`` (bytes
0x80-0xFF to U+F780-U+F7FF) and ``replacement``, which decodes any non-empty input
to a single U+FFFD: browsers use it for labels such as ``iso-2022-kr`` whose
decoders let markup hide in escape sequences.

Where Python's codec still differs from the standard's index, the difference is
small and left alone: the five undefined bytes of the windows-125x codecs
decode to U+FFFD instead of C1 controls, a lone 0x80 in GBK to U+FFFD instead of
the euro sign, KOI8-U's 0xAE/0xBE to box drawings instead of the Belarusian
ў/Ў, and EUC-JP's NEC and IBM extension rows to U+FFFD.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import cast

# (name, Python codec, labels), in the standard's order.
ENCODINGS: tuple[tuple[str, str, str], ...] = (
    ("UTF-8", "utf-8", "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8"),
    ("IBM866", "cp866", "866 cp866 csibm866 ibm866"),
    ("ISO-8859-2", "iso8859-2",
     "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2 latin2"),
    ("ISO-8859-3", "iso8859-3",
     "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3 latin3"),
    ("ISO-8859-4", "iso8859-4",
     "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4 latin4"),
    ("ISO-8859-5", "iso8859-5",
     "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 iso_8859-5:1988"),
    ("ISO-8859-6", "iso8859-6",
     "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 iso-8859-6-e "
     "iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987"),
    ("ISO-8859-7", "iso8859-7",
     "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 iso88597 "
     "iso_8859-7 iso_8859-7:1987 sun_eu_greek"),
    ("ISO-8859-8", "iso8859-8",
     "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8 iso88598 "
     "iso_8859-8 iso_8859-8:1988 visual"),
    ("ISO-8859-8-I", "iso8859-8", "csiso88598i iso-8859-8-i logical"),
    ("ISO-8859-10", "iso8859-10", "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6"),
    ("ISO-8859-13", "iso8859-13", "iso-8859-13 iso8859-13 iso885913"),
    ("ISO-8859-14", "iso8859-14", "iso-8859-14 iso8859-14 iso885914"),
    ("ISO-8859-15", "iso8859-15", "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9"),
    ("ISO-8859-16", "iso8859-16", "iso-8859-16"),
    ("KOI8-R", "koi8-r", "cskoi8r koi koi8 koi8-r koi8_r"),
    ("KOI8-U", "koi8-u", "koi8-ru koi8-u"),
    ("macintosh", "mac-roman", "csmacintosh mac macintosh x-mac-roman"),
    ("windows-874", "cp874", "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874"),
    ("windows-1250", "cp1250", "cp1250 windows-1250 x-cp1250"),
    ("windows-1251", "cp1251", "cp1251 windows-1251 x-cp1251"),
    ("windows-1252", "cp1252",
     "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 "
     "iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252"),
    ("windows-1253", "cp1253", "cp1253 windows-1253 x-cp1253"),
    ("windows-1254", "cp1254",
     "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 iso_8859-9:1989 l5 "
     "latin5 windows-1254 x-cp1254"),
    ("windows-1255", "cp1255", "cp1255 windows-1255 x-cp1255"),
    ("windows-1256", "cp1256", "cp1256 windows-1256 x-cp1256"),
    ("windows-1257", "cp1257", "cp1257 windows-1257 x-cp1257"),
    ("windows-1258", "cp1258", "cp1258 windows-1258 x-cp1258"),
    ("x-mac-cyrillic", "mac-cyrillic", "x-mac-cyrillic x-mac-ukrainian"),
    ("GBK", "gb18030",
     "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk"),
    ("gb18030", "gb18030", "gb18030"),
    ("Big5", "big5hkscs", "big5 big5-hkscs cn-big5 csbig5 x-x-big5"),
    ("EUC-JP", "euc_jp", "cseucpkdfmtjapanese euc-jp x-euc-jp"),
    ("ISO-2022-JP", "iso2022_jp", "csiso2022jp iso-2022-jp"),
    ("Shift_JIS", "cp932",
     "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis"),
    ("EUC-KR", "cp949",
     "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601 "
     "ksc_5601 windows-949"),
    ("replacement", "replacement",
     "csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr replacement"),
    ("UTF-16BE", "utf-16-be", "unicodefffe utf-16be"),
    ("UTF-16LE", "utf-16-le", "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le"),
    ("x-user-defined", "x-user-defined", "x-user-defined"),
)  # fmt: skip

ENCODING_OF_LABEL: dict[str, str] = {label: name for name, _, labels in ENCODINGS for label in labels.split()}
CODEC_OF_ENCODING: dict[str, str] = {name: codec for name, codec, _ in ENCODINGS}

_USER_DEFINED_TABLE = "".join(chr(byte if byte < 0x80 else 0xF780 + byte - 0x80) for byte in range(256))


def _decode_user_defined(data: bytes, errors: str = "strict") -> tuple[str, int]:
    return codecs.charmap_decode(data, errors, _USER_DEFINED_TABLE)


def _decode_replacement(data: bytes, errors: str = "strict") -> tuple[str, int]:
    """The standard's replacement decoder: one U+FFFD for any input but the empty one."""
    if data and errors == "strict":
        raise UnicodeDecodeError("replacement", bytes(data), 0, len(data), "not decodable")
    return ("\ufffd" if data else ""), len(data)


def _refuse_encoding(text: str, errors: str = "strict") -> tuple[bytes, int]:
    raise UnicodeEncodeError("x-user-defined", text, 0, len(text), "decode-only codec")


def _codec_info(name: str, decode: Callable[[bytes, str], tuple[str, int]]) -> codecs.CodecInfo:
    return codecs.CodecInfo(_refuse_encoding, cast("codecs._Decoder", decode), name=name)


_OWN_CODECS = {
    "x_user_defined": _codec_info("x-user-defined", _decode_user_defined),
    "replacement": _codec_info("replacement", _decode_replacement),
}


def _search(name: str) -> codecs.CodecInfo | None:
    """Python's codec registry asks this for names it does not know (normalised:
    lower case, ``-`` as ``_``)."""
    return _OWN_CODECS.get(name.replace("-", "_"))


codecs.register(_search)
