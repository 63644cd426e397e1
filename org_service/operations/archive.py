"""The backup file: one zstandard stream of framed BSON documents (docs/backup-format.md).

    header    H {format, format_version, organization, created_at, service_version}
    sections  S {section: name}, then D <document> ... for each of SECTIONS, in that order
    manifest  M {..the header's fields.., sections: [{name, count, sha256}]}

Each frame is one tag byte and one BSON document (BSON carries its own length). The
checksums and counts can only be known once a section is written, so the manifest closes
the file; the header opens it so that a file of another format version is refused after
reading a few bytes. A section's SHA-256 is over the concatenated BSON of its documents,
exactly as stored: records are copied as the raw BSON the database sent, so they come back
byte for byte. Writer and reader hold one document at a time: memory does not grow with
the organization."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import bson
import zstandard
from bson.codec_options import CodecOptions

from org_service.db import Document

FORMAT = "org_service-backup"
FORMAT_VERSION = 1
SECTIONS = ("organization", "members", "indexes", "policies", "records", "audit")
HEADER, SECTION, DATA, MANIFEST = b"H", b"S", b"D", b"M"
# A MongoDB document is at most 16 MiB; a length beyond is a damaged file, not a document.
MAX_DOCUMENT = 16 * 1024 * 1024 + 16 * 1024
READ_CHUNK = 1 << 20
DECODE: CodecOptions[Document] = CodecOptions(tz_aware=True)


class BackupFileError(Exception):
    """The file is no backup this service can read, or it is damaged: nothing is written."""


@dataclass
class SectionSum:
    name: str
    count: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def add(self, raw: bytes) -> None:
        self.count += 1
        self.digest.update(raw)

    def entry(self) -> Document:
        return {"name": self.name, "count": self.count, "sha256": self.digest.hexdigest()}


class BackupWriter:
    """Write a backup to a binary file object, one section after another."""

    def __init__(self, out: IO[bytes], header: Document, *, level: int = 3) -> None:
        self.header = {"format": FORMAT, "format_version": FORMAT_VERSION, **header}
        self._stream = zstandard.ZstdCompressor(level=level, write_checksum=True) \
            .stream_writer(out, closefd=False)
        self._sums: list[SectionSum] = []
        self._frame(HEADER, bson.encode(self.header))

    def _frame(self, tag: bytes, raw: bytes) -> None:
        self._stream.write(tag)
        self._stream.write(raw)

    def section(self, name: str) -> None:
        expected = SECTIONS[len(self._sums)]
        if name != expected:
            raise ValueError(f"section {name} out of order (expected {expected})")
        self._sums.append(SectionSum(name))
        self._frame(SECTION, bson.encode({"section": name}))

    def write_raw(self, raw: bytes) -> None:
        self._sums[-1].add(raw)
        self._frame(DATA, raw)

    def write(self, document: Document) -> None:
        self.write_raw(bson.encode(document))

    def finish(self) -> Document:
        if len(self._sums) != len(SECTIONS):
            raise ValueError("a backup has every section")
        manifest = {**self.header, "sections": [s.entry() for s in self._sums]}
        self._frame(MANIFEST, bson.encode(manifest))
        self._stream.flush(zstandard.FLUSH_FRAME)
        self._stream.close()  # type: ignore[no-untyped-call]
        return manifest


def counts(manifest: Document) -> dict[str, int]:
    return {s["name"]: s["count"] for s in manifest["sections"]}


class BackupReader:
    """Read a backup file: `header()` first (refuses other formats and versions), then
    `frames()`, which yields (section, raw BSON) and checks the manifest at the end."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115  (closed by close())
        except OSError as exc:
            raise BackupFileError(f"cannot read {path}: {exc.strerror or exc}") from None
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            self._file, read_size=READ_CHUNK, read_across_frames=False)
        self._header: Document | None = None
        self.manifest: Document | None = None

    def close(self) -> None:
        self._reader.close()  # type: ignore[no-untyped-call]
        self._file.close()

    def __enter__(self) -> BackupReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, size: int, *, at_end_ok: bool = False) -> bytes:
        chunks, left = [], size
        while left:
            try:
                chunk = self._reader.read(left)
            except zstandard.ZstdError as exc:
                raise BackupFileError(
                    f"{self.path} is damaged or not a backup (zstandard: {exc})") from None
            if not chunk:
                if at_end_ok and left == size:
                    return b""
                raise BackupFileError(f"{self.path} is cut short")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _frame(self) -> tuple[bytes, bytes]:
        tag = self._read(1)
        length_bytes = self._read(4)
        (length,) = struct.unpack("<i", length_bytes)
        if not 5 <= length <= MAX_DOCUMENT:
            raise BackupFileError(f"{self.path} is damaged (a document of {length} bytes)")
        return tag, length_bytes + self._read(length - 4)

    def _decode(self, raw: bytes) -> Document:
        try:
            return bson.decode(raw, codec_options=DECODE)
        except Exception as exc:  # bson raises several kinds for damaged input
            raise BackupFileError(f"{self.path} is damaged ({exc})") from None

    def header(self) -> Document:
        if self._header is None:
            tag, raw = self._frame()
            header = self._decode(raw) if tag == HEADER else {}
            if header.get("format") != FORMAT:
                raise BackupFileError(f"{self.path} is not an org_service backup")
            if header.get("format_version") != FORMAT_VERSION:
                raise BackupFileError(
                    f"{self.path} has format version {header.get('format_version')}; this "
                    f"service reads version {FORMAT_VERSION}")
            self._header = header
        return self._header

    def frames(self) -> Iterator[tuple[str, bytes]]:
        """Every document as (section, raw BSON), in file order; raises BackupFileError as
        soon as the file disagrees with itself, and at the end unless every section's count
        and SHA-256 match the manifest."""
        header = self.header()
        sums: list[SectionSum] = []
        while True:
            tag, raw = self._frame()
            if tag == DATA and sums:
                sums[-1].add(raw)
                yield sums[-1].name, raw
            elif tag == SECTION:
                name = self._decode(raw).get("section")
                if len(sums) >= len(SECTIONS) or name != SECTIONS[len(sums)]:
                    raise BackupFileError(f"{self.path} is damaged (section {name!r} out of "
                                          "place)")
                sums.append(SectionSum(name))
            elif tag == MANIFEST:
                self._check(header, self._decode(raw), sums)
                return
            else:
                raise BackupFileError(f"{self.path} is damaged (unknown frame {tag!r})")

    def _check(self, header: Document, manifest: Document, sums: list[SectionSum]) -> None:
        if self._read(1, at_end_ok=True):
            raise BackupFileError(f"{self.path} is damaged (data after the manifest)")
        if {k: v for k, v in manifest.items() if k != "sections"} != header:
            raise BackupFileError(f"{self.path} is damaged (manifest and header disagree)")
        found = [s.entry() for s in sums]
        if manifest.get("sections") != found:
            wrong = [s["name"] for s, m in zip(found, manifest.get("sections") or [],
                                              strict=False) if s != m]
            raise BackupFileError(
                f"{self.path} is damaged: checksum or count of section(s) "
                f"{', '.join(wrong) or 'list'} differ from its manifest")
        self.manifest = manifest


def verify(path: str) -> Document:
    """Read the whole file once and check it; its manifest."""
    with BackupReader(path) as reader:
        for _ in reader.frames():
            pass
        assert reader.manifest is not None
        return reader.manifest
