"""Downloads of stored media through signed, expiring links."""

from __future__ import annotations

from pathlib import PurePosixPath

from fastapi import APIRouter, Depends, Request, Response

from tilework.api.auth import tilework
from tilework.api.files import file_response, verify_signed_request
from tilework.errors import NotFound
from tilework.service import Tilework

router = APIRouter()


@router.api_route("/files/{key:path}", methods=["GET", "HEAD"])
def download(key: str, request: Request, tw: Tilework = Depends(tilework)) -> Response:
    verify_signed_request(request, tw.signer)
    try:
        path = tw.storage.path(key)
    except ValueError:
        raise NotFound("No such file.") from None
    filename = request.query_params.get("filename") or PurePosixPath(key).name
    return file_response(path, filename=filename, request=request, inline=True)
