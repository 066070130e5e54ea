"""Helpers the API routes use to send files and to receive uploads.

Downloads go through :func:`file_response`: Starlette's ``FileResponse`` serves the
bytes and answers Range requests, and this module adds the content type, a safe
``Content-Disposition`` and tolerance for malformed Range headers.

Uploads are streamed straight to disk by :func:`receive_upload` (multipart forms),
with the size limit enforced while reading.
The route must take the body only through these: no ``Form``/``File`` parameters.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import quote

import anyio.to_thread
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from tilework.errors import Forbidden, NotFound, PayloadTooLarge, ValidationFailed
from tilework.media.signing import UrlSigner

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

logger = logging.getLogger(__name__)

FILE_FIELD = "file"
FORM_OVERHEAD_BYTES = 1024 * 1024
"""Room a multipart body may take besides the file: fields, part headers, boundaries."""

MAX_FORM_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
MAX_FILENAME_BYTES = 200

CONTENT_TYPES: Mapping[str, str] = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".ts": "video/mp2t",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/opus",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
    ".txt": "text/plain",
    ".json": "application/json",
    ".zip": "application/zip",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_INLINE_TYPES = frozenset(
    value for value in CONTENT_TYPES.values() if value.split("/")[0] != "application"
)
_RANGE_SPEC = re.compile(r"\s*(?:([0-9]+)-([0-9]*)|-([0-9]+))\s*")
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_WRITE_BATCH_BYTES = 256 * 1024


@dataclass(frozen=True)
class ReceivedUpload:
    """A file received from a client, already complete on disk."""

    path: Path
    filename: str
    size: int
    content_type: str | None
    fields: dict[str, str] = field(default_factory=dict)


def content_type_for(filename: str) -> str:
    """Guess a media type from the extension of ``filename``."""
    suffix = Path(filename).suffix.lower()
    return CONTENT_TYPES.get(suffix, DEFAULT_CONTENT_TYPE)


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """Build a Content-Disposition value with an ASCII fallback and a UTF-8 name."""
    name = _visible_text(unicodedata.normalize("NFC", filename)).strip() or "download"
    kind = "inline" if inline else "attachment"
    fallback = _ascii_fallback(name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def file_response(
    path: Path,
    *,
    filename: str,
    content_type: str | None = None,
    request: Request,
    inline: bool = False,
) -> Response:
    """Send ``path`` as ``filename``, answering single and multiple Range requests.

    ``inline`` asks browsers to show the file; it only applies to audio, video,
    images and plain text, everything else is always sent as an attachment.
    """
    try:
        stat_result = path.stat()
    except FileNotFoundError:
        stat_result = None
    if stat_result is None or not stat.S_ISREG(stat_result.st_mode):
        raise NotFound(
            f"The file {filename!r} is not available any more; it may have been "
            "deleted, so request it again."
        )

    media_type = content_type or content_type_for(filename or path.name)
    headers = {
        "content-disposition": content_disposition(
            filename, inline=inline and media_type in _INLINE_TYPES
        ),
        "x-content-type-options": "nosniff",
    }
    usable_range = _usable_range(request.headers.get("range"), stat_result.st_size)
    return _MediaFileResponse(
        path,
        headers=headers,
        media_type=media_type,
        stat_result=stat_result,
        usable_range=usable_range,
    )


def verify_signed_request(request: Request, signer: UrlSigner) -> None:
    """Raise Forbidden unless the request's URL carries a valid signature."""
    signer.verify(signed_path(request), request.query_params)


def signed_path(request: Request) -> str:
    """Return the decoded request path as signed: without the server's root path."""
    path: str = request.scope["path"]
    root: str = request.scope.get("app_root_path", request.scope.get("root_path", ""))
    rest = path[len(root) :]
    if root and path.startswith(root) and rest.startswith("/"):
        return rest
    return path


def sanitize_filename(name: str) -> str:
    """Keep the last path component of ``name`` without control characters.

    Letters of any script stay; leading dots and surrounding spaces go; long names are
    cut to 200 UTF-8 bytes keeping the extension; an empty result becomes "upload".
    """
    base = re.split(r"[/\\]", name)[-1]
    base = _visible_text(unicodedata.normalize("NFC", base))
    base = base.strip().lstrip(".").strip()
    return _truncate_name(base) or "upload"


async def receive_upload(
    request: Request,
    dest_dir: Path,
    *,
    max_bytes: int,
    required_fields: Mapping[str, str] | None = None,
) -> ReceivedUpload:
    """Stream a multipart/form-data upload to a new file in ``dest_dir``.

    The form's fields come first, then the file in a part named ``file``. Each of
    ``required_fields`` must be among the fields before the file, with exactly the
    given value, or Forbidden is raised before any of the file is stored.
    """
    boundary = _multipart_boundary(request)
    _reject_declared_size(request, max_bytes + FORM_OVERHEAD_BYTES, max_bytes)
    reader = _FormReader(dest_dir, max_bytes, dict(required_fields or {}))
    parser = MultipartParser(boundary, reader.callbacks())

    try:
        await _feed(request, parser, reader, max_bytes)
        sink = reader.finish()
        await sink.flush()
        sink.close()
    except BaseException:
        reader.discard()
        raise

    logger.info("Received the upload %r (%d bytes)", sink.filename, sink.size)
    return ReceivedUpload(
        path=sink.path,
        filename=sink.filename,
        size=sink.size,
        content_type=sink.content_type,
        fields=reader.fields,
    )


class _MediaFileResponse(FileResponse):
    def __init__(
        self,
        path: Path,
        *,
        headers: Mapping[str, str],
        media_type: str,
        stat_result: os.stat_result,
        usable_range: str | None,
    ) -> None:
        super().__init__(
            path, headers=headers, media_type=media_type, stat_result=stat_result
        )
        self.usable_range = usable_range

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (name, value) for name, value in scope["headers"] if name != b"range"
        ]
        if self.usable_range is not None:
            headers.append((b"range", self.usable_range.encode("latin-1")))
        await super().__call__({**scope, "headers": headers}, receive, send)


def _usable_range(header: str | None, size: int) -> str | None:
    """Return the Range header to honour, or None to send the whole file.

    A malformed header or a unit other than bytes is ignored (RFC 9110 §14.2);
    unsatisfiable ranges are dropped while any other range can be served.
    """
    if header is None:
        return None
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None

    parsed = [_RANGE_SPEC.fullmatch(spec) for spec in specs.split(",")]
    if not parsed or any(match is None for match in parsed):
        return None
    matches = [match for match in parsed if match is not None]
    if any(match[2] and int(match[2]) < int(match[1]) for match in matches if match[1]):
        return None

    satisfiable = [match for match in matches if _satisfiable(match, size)]
    kept = satisfiable or matches
    return "bytes=" + ", ".join(match.group(0).strip() for match in kept)


def _satisfiable(match: re.Match[str], size: int) -> bool:
    if match[1] is not None:
        return int(match[1]) < size
    return int(match[3]) > 0 and size > 0


def _visible_text(text: str) -> str:
    return "".join(
        char for char in text if unicodedata.category(char) not in ("Cc", "Cf", "Cs")
    )


def _ascii_fallback(name: str) -> str:
    characters = []
    for char in name:
        if " " <= char <= "~" and char not in '"\\%':
            characters.append(char)
            continue
        plain = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
        plain = "".join(c for c in plain if " " <= c <= "~" and c not in '"\\%')
        characters.append(plain or "_")
    return "".join(characters)


def _truncate_name(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_FILENAME_BYTES:
        return name

    suffix = Path(name).suffix
    if len(suffix.encode("utf-8")) > 16:
        suffix = ""
    room = MAX_FILENAME_BYTES - len(suffix.encode("utf-8"))
    stem = name[: len(name) - len(suffix)].encode("utf-8")[:room]
    return stem.decode("utf-8", "ignore").rstrip() + suffix


def _multipart_boundary(request: Request) -> bytes:
    header = request.headers.get("content-type", "")
    media_type, options = parse_options_header(header)
    boundary = options.get(b"boundary", b"")

    if media_type != b"multipart/form-data" or not boundary:
        raise ValidationFailed(
            f"The upload has the content type {header or 'none'!r}; send a "
            f"multipart/form-data body with the file in a part named {FILE_FIELD!r}."
        )
    return boundary


def _reject_declared_size(request: Request, limit: int, max_bytes: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(max_bytes)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than the limit of {max_bytes} bytes "
        f"({_human_size(max_bytes)}); send a smaller file."
    )


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def _clean_media_type(header: str | bytes | None) -> str | None:
    media_type = parse_options_header(header)[0].decode("latin-1")
    return media_type if _MEDIA_TYPE.fullmatch(media_type) else None


def _decode_header(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _require_content(sink: _UploadSink) -> None:
    if sink.size == 0:
        raise ValidationFailed(
            f"The uploaded file {sink.filename!r} is empty; choose a file with content."
        )


async def _feed(
    request: Request, parser: MultipartParser, reader: _FormReader, max_bytes: int
) -> None:
    limit = max_bytes + FORM_OVERHEAD_BYTES
    received = 0

    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(max_bytes)
        try:
            parser.write(chunk)
        except FormParserError as exc:
            raise ValidationFailed(
                f"The multipart body is malformed ({exc}); send a multipart/form-data "
                "body as built by an HTTP client or a browser form."
            ) from exc
        await reader.flush_if_large()


class _UploadSink:
    """A new file in ``dest_dir`` filled in batches off the event loop."""

    def __init__(
        self, dest_dir: Path, filename: str, content_type: str | None, max_bytes: int
    ) -> None:
        dest_dir.mkdir(parents=True, exist_ok=True)
        suffix = Path(filename).suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""

        self.path = dest_dir / f"upload-{secrets.token_hex(8)}{suffix}"
        self.filename = filename
        self.content_type = content_type
        self.size = 0
        self._max_bytes = max_bytes
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._handle: BinaryIO = self.path.open("xb")

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._max_bytes:
            raise _too_large(self._max_bytes)
        self._pending.append(data)
        self._pending_size += len(data)

    async def flush_if_large(self) -> None:
        if self._pending_size >= _WRITE_BATCH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if data:
            await anyio.to_thread.run_sync(self._handle.write, data)

    def close(self) -> None:
        self._handle.close()

    def discard(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)


class _FormReader:
    """Receives python-multipart's callbacks for one multipart/form-data body."""

    def __init__(
        self, dest_dir: Path, max_bytes: int, required_fields: dict[str, str]
    ) -> None:
        self.fields: dict[str, str] = {}
        self.sink: _UploadSink | None = None
        self.finished = False
        self._dest_dir = dest_dir
        self._max_bytes = max_bytes
        self._required_fields = required_fields
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._field_name: str | None = None
        self._field_value = bytearray()
        self._field_bytes = 0

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._headers.clear,
            "on_header_field": _appender(self._header_name),
            "on_header_value": _appender(self._header_value),
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }

    def finish(self) -> _UploadSink:
        if not self.finished:
            raise ValidationFailed(
                "The upload ended before the closing multipart boundary; it was cut "
                "short, so send it again."
            )
        if self.sink is None:
            raise ValidationFailed(
                f"The form has no part named {FILE_FIELD!r}; add the file as a part "
                f"named {FILE_FIELD!r} after the other fields."
            )
        _require_content(self.sink)
        return self.sink

    async def flush_if_large(self) -> None:
        if self.sink is not None:
            await self.sink.flush_if_large()

    def discard(self) -> None:
        if self.sink is not None:
            self.sink.discard()

    def _on_header_end(self) -> None:
        name = bytes(self._header_name).decode("latin-1").strip().lower()
        self._headers[name] = bytes(self._header_value).strip()
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition", b"")
        _, options = parse_options_header(disposition)
        part_name = _decode_header(options.get(b"name", b""))
        if not part_name:
            raise ValidationFailed(
                f"A form part has no name (Content-Disposition "
                f"{_decode_header(disposition)!r}); name every part."
            )

        if self.sink is not None:
            raise ValidationFailed(
                f"The form part {part_name!r} comes after the file; send every field "
                f"before the part named {FILE_FIELD!r}."
            )
        if part_name == FILE_FIELD:
            self._start_file(options.get(b"filename", b""))
        elif b"filename" in options:
            raise ValidationFailed(
                f"The file was sent in a part named {part_name!r}; name that part "
                f"{FILE_FIELD!r}."
            )
        else:
            self._start_field(part_name)

    def _start_field(self, name: str) -> None:
        if name in self.fields or len(self.fields) >= MAX_FORM_FIELDS:
            raise ValidationFailed(
                f"The form field {name!r} is repeated or beyond the first "
                f"{MAX_FORM_FIELDS} fields; send each field once."
            )
        self._field_name = name
        self._field_value.clear()

    def _start_file(self, raw_filename: bytes) -> None:
        self._check_required_fields()

        filename = sanitize_filename(_decode_form_filename(raw_filename))
        content_type = _clean_media_type(self._headers.get("content-type", b""))
        self.sink = _UploadSink(self._dest_dir, filename, content_type, self._max_bytes)

    def _check_required_fields(self) -> None:
        for name, value in self._required_fields.items():
            given = self.fields.get(name)
            if given is None or not secrets.compare_digest(
                given.encode("utf-8"), value.encode("utf-8")
            ):
                raise Forbidden(
                    f"The upload form's field {name!r} is missing or does not match "
                    "the signed upload link; send the form exactly as it was issued."
                )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._field_name is None:
            if self.sink is not None:
                self.sink.add(data[start:end])
            return

        self._field_bytes += end - start
        if self._field_bytes > MAX_FIELD_BYTES:
            raise PayloadTooLarge(
                f"The form fields add up to more than {MAX_FIELD_BYTES} bytes; send "
                "shorter fields."
            )
        self._field_value += data[start:end]

    def _on_part_end(self) -> None:
        if self._field_name is None:
            return
        try:
            self.fields[self._field_name] = self._field_value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed(
                f"The form field {self._field_name!r} is not valid UTF-8; send text "
                "fields as UTF-8."
            ) from None
        self._field_name = None

    def _on_end(self) -> None:
        self.finished = True


def _appender(target: bytearray) -> Callable[[bytes, int, int], None]:
    def append(data: bytes, start: int, end: int) -> None:
        target.extend(data[start:end])

    return append


def _decode_form_filename(raw: bytes) -> str:
    name = _decode_header(raw)
    return name.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")
