"""The one tree of tilework errors.

Every error a user can see derives from :class:`TileworkError`. Foreign exceptions
(subprocess, SQLAlchemy, httpx, PyAV) are translated into these where they enter the
package, with the original chained as ``__cause__``.

    TileworkError
    ├── ApiError                 mapped to an HTTP status and an error code
    │   ├── ValidationFailed     400, carries every problem found
    │   ├── InvalidApiKey        401
    │   ├── Forbidden            403
    │   ├── NotFound             404
    │   ├── Conflict             409
    │   ├── PayloadTooLarge      413
    │   └── OutOfRange           422
    ├── MediaError               a media file or a conversion went wrong
    │   ├── FFmpegError          ffmpeg exited non-zero (exit code, stderr tail)
    │   ├── ProbeError           a file is not decodable media of the expected kind
    │   └── FetchError           a remote input could not be downloaded
    ├── Cancelled                the work was cancelled; not a failure
    ├── TileError                a tile could not do its job; the message is for users
    │   ├── NeedsProvider        the tile needs a generative provider that is not set up
    │   └── NeedsCredits         the organization ran out of credits
    └── OutboundError            an outgoing connection was refused before it was made
        ├── InvalidTargetUrl     the URL is not an absolute http(s) URL with a host
        ├── BlockedAddress       the target is a non-public address; not retryable
        └── AddressResolutionError  the target's name did not resolve; retryable
"""

from __future__ import annotations

from collections.abc import Sequence


class TileworkError(Exception):
    """Base class of every error raised by tilework."""


class ApiError(TileworkError):
    status_code = 500
    code = "internal_server_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailed(ApiError):
    """Raised when a request is malformed; lists every problem, not only the first."""

    status_code = 400
    code = "validation_error"

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class InvalidApiKey(ApiError):
    status_code = 401
    code = "invalid_api_key"


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class OutOfRange(ApiError):
    status_code = 422
    code = "parameter_out_of_range"


class MediaError(TileworkError):
    """Raised when media cannot be read, fetched or converted."""


class FFmpegError(MediaError):
    """Raised when ffmpeg exits with an error; keeps its exit code and stderr tail."""

    def __init__(self, message: str, *, returncode: int, stderr_tail: str) -> None:
        detail = f"{message} (ffmpeg exit code {returncode})"
        if stderr_tail:
            detail += f": {stderr_tail}"
        super().__init__(detail)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class ProbeError(MediaError):
    """Raised when a file is not decodable media of the kind expected."""


class FetchError(MediaError):
    """Raised when a remote input cannot be downloaded."""


class Cancelled(TileworkError):
    """Raised inside work that was cancelled; never reported as a failure."""


class TileError(TileworkError):
    """Raised by a tile when it cannot do its job; the message is shown to users."""


class NeedsProvider(TileError):
    """Raised when a tile needs a generative provider and none is configured."""


class NeedsCredits(TileError):
    """Raised when the organization has no credits left for a task."""


class OutboundError(TileworkError):
    """Raised when tilework refuses or cannot prepare an outgoing connection."""


class InvalidTargetUrl(OutboundError):
    """Raised when a URL to connect to is not an absolute http(s) URL with a host."""


class BlockedAddress(OutboundError):
    """Raised when a target is, or resolves to, an address that is not public."""

    def __init__(self, message: str, *, host: str, address: str, reason: str) -> None:
        super().__init__(message)
        self.host = host
        self.address = address
        self.reason = reason


class AddressResolutionError(OutboundError):
    """Raised when a target's hostname cannot be resolved; worth retrying later."""

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message)
        self.host = host
