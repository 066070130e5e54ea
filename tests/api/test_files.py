from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from tilework.api.files import (
    ReceivedUpload,
    content_disposition,
    file_response,
    receive_upload,
    sanitize_filename,
    signed_path,
    verify_signed_request,
)
from tilework.errors import ApiError
from tilework.media.signing import UrlSigner

SIGNED_FIELDS = {"asset_id": "asset-1", "policy": "p-123"}
ODD_NAME = 'vidéo 日本 "x".mp4'


@dataclass
class LiveServer:
    url: str
    files: Path
    uploads: Path
    signer: UrlSigner

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, trust_env=False)


def build_app(files: Path, uploads: Path, signer: UrlSigner) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        body = {"code": exc.code, "detail": exc.detail}
        return JSONResponse(body, status_code=exc.status_code)

    @app.api_route("/files/{name:path}", methods=["GET", "HEAD"])
    async def download(request: Request, name: str) -> Response:
        filename = request.query_params.get("as", name)
        inline = "inline" in request.query_params
        return file_response(
            files / name, filename=filename, request=request, inline=inline
        )

    @app.get("/signed/{name:path}")
    async def signed(request: Request, name: str) -> Response:
        verify_signed_request(request, signer)
        return PlainTextResponse(name)

    @app.post("/upload/{dest}")
    async def upload(request: Request, dest: str, max: int) -> Response:
        received = await receive_upload(request, uploads / dest, max_bytes=max)
        return describe(received)

    @app.post("/signed-upload/{dest}")
    async def signed_upload(request: Request, dest: str, max: int) -> Response:
        received = await receive_upload(
            request, uploads / dest, max_bytes=max, required_fields=SIGNED_FIELDS
        )
        return describe(received)

    return app


def describe(received: ReceivedUpload) -> Response:
    with received.path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return JSONResponse(
        {
            "filename": received.filename,
            "size": received.size,
            "content_type": received.content_type,
            "fields": received.fields,
            "sha256": digest,
            "path": received.path.name,
        }
    )


@pytest.fixture(scope="module")
def files_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    base = tmp_path_factory.mktemp("files")
    files, uploads = base / "files", base / "uploads"
    files.mkdir()
    signer = UrlSigner(os.urandom(32), "http://placeholder")
    config = uvicorn.Config(
        build_app(files, uploads, signer),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
    )
    live = uvicorn.Server(config)
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not live.started:
        assert time.monotonic() < deadline, "the test app did not start"
        time.sleep(0.01)

    port = live.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    signer.base_url = url
    yield LiveServer(url, files, uploads, signer)

    live.should_exit = True
    thread.join(5)


@pytest.fixture(scope="module")
def video(files_server: LiveServer) -> bytes:
    data = os.urandom(5000)
    (files_server.files / "clip.mp4").write_bytes(data)
    return data


def upload_dir(files_server: LiveServer, name: str) -> list[Path]:
    folder = files_server.uploads / name
    return sorted(folder.iterdir()) if folder.exists() else []


# Downloads


def test_whole_file_advertises_ranges(files_server: LiveServer, video: bytes) -> None:
    with files_server.client() as client:
        response = client.get("/files/clip.mp4")

    assert response.status_code == 200
    assert response.content == video
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(len(video))
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=-100", 4900, 5000),
        ("bytes=1000-", 1000, 5000),
        ("bytes=4990-99999", 4990, 5000),
        ("bytes=-99999", 0, 5000),
        ("bytes=0-9, 99999-", 0, 10),
    ],
)
def test_single_ranges(
    files_server: LiveServer, video: bytes, header: str, start: int, end: int
) -> None:
    with files_server.client() as client:
        response = client.get("/files/clip.mp4", headers={"Range": header})

    assert response.status_code == 206
    assert response.content == video[start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/5000"
    assert response.headers["content-length"] == str(end - start)
    assert response.headers["content-type"] == "video/mp4"


@pytest.mark.parametrize("header", ["bytes=5000-", "bytes=-0", "bytes=6000-7000"])
def test_unsatisfiable_ranges(
    files_server: LiveServer, video: bytes, header: str
) -> None:
    with files_server.client() as client:
        response = client.get("/files/clip.mp4", headers={"Range": header})

    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */5000"


@pytest.mark.parametrize("header", ["bytes=abc", "items=0-5", "bytes=9-2", "bytes=--5"])
def test_malformed_ranges_get_the_whole_file(
    files_server: LiveServer, video: bytes, header: str
) -> None:
    with files_server.client() as client:
        response = client.get("/files/clip.mp4", headers={"Range": header})

    assert response.status_code == 200
    assert response.content == video


def test_multiple_ranges(files_server: LiveServer, video: bytes) -> None:
    with files_server.client() as client:
        response = client.get("/files/clip.mp4", headers={"Range": "bytes=0-1,10-11"})

    assert response.status_code == 206
    assert response.headers["content-type"].startswith("multipart/byteranges")
    assert video[0:2] in response.content and video[10:12] in response.content


def test_head_with_a_range_sends_no_body(
    files_server: LiveServer, video: bytes
) -> None:
    with files_server.client() as client:
        response = client.head("/files/clip.mp4", headers={"Range": "bytes=0-99"})

    assert response.status_code == 206
    assert response.content == b""
    assert response.headers["content-length"] == "100"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.mp4", "video/mp4"),
        ("a.MOV", "video/quicktime"),
        ("a.jpg", "image/jpeg"),
        ("a.png", "image/png"),
        ("a.zip", "application/zip"),
        ("a.vtt", "text/vtt; charset=utf-8"),
        ("a.srt", "application/x-subrip"),
        ("a.mp3", "audio/mpeg"),
        ("a.wav", "audio/wav"),
        ("a.unknown", "application/octet-stream"),
        ("noextension", "application/octet-stream"),
    ],
)
def test_content_types_follow_the_extension(
    files_server: LiveServer, name: str, expected: str
) -> None:
    (files_server.files / name).write_bytes(b"data")

    with files_server.client() as client:
        response = client.get(f"/files/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"] == expected


def test_non_ascii_download_name(files_server: LiveServer, video: bytes) -> None:
    with files_server.client() as client:
        response = client.get("/files/clip.mp4", params={"as": ODD_NAME})

    disposition = response.headers["content-disposition"]
    kind, fallback, extended = (part.strip() for part in disposition.split(";"))
    assert kind == "attachment"
    assert fallback.startswith('filename="') and fallback.endswith('"')
    assert fallback[10:-1].isascii() and '"' not in fallback[10:-1]
    assert fallback[10:-1].endswith(".mp4")
    assert extended.startswith("filename*=UTF-8''")
    assert unquote(extended.removeprefix("filename*=UTF-8''")) == ODD_NAME


def test_inline_only_for_media(files_server: LiveServer, video: bytes) -> None:
    (files_server.files / "page.html").write_bytes(b"<script>alert(1)</script>")

    with files_server.client() as client:
        clip = client.get("/files/clip.mp4", params={"inline": "1"})
        page = client.get("/files/page.html", params={"inline": "1"})

    assert clip.headers["content-disposition"].startswith("inline;")
    assert page.headers["content-disposition"].startswith("attachment;")
    assert page.headers["content-type"] == "application/octet-stream"


def test_missing_file_is_404(files_server: LiveServer) -> None:
    (files_server.files / "folder.mp4").mkdir()

    with files_server.client() as client:
        gone = client.get("/files/gone.mp4")
        folder = client.get("/files/folder.mp4")

    assert gone.status_code == 404
    assert "gone.mp4" in gone.json()["detail"]
    assert folder.status_code == 404


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("plain.mp4", "plain.mp4"),
        ("a\r\nSet-Cookie: x=1.mp4", "aSet-Cookie: x=1.mp4"),
        ('q"u\\o%te.mp4', "q_u_o_te.mp4"),
        ("日本.mp4", "__.mp4"),
        ("\r\n", "download"),
    ],
)
def test_content_disposition_neutralises_names(name: str, fallback: str) -> None:
    value = content_disposition(name)

    assert "\r" not in value and "\n" not in value
    assert value.startswith(f'attachment; filename="{fallback}"; ')
    assert value.isascii()


# Signed links


def test_signed_non_ascii_path_end_to_end(files_server: LiveServer) -> None:
    name = "dir one/vidéo 日本 100% #1?.mp4"
    url = files_server.signer.sign(f"/signed/{name}", ttl_seconds=60)

    with httpx.Client(timeout=10, trust_env=False) as client:
        good = client.get(url)
        tampered_path = client.get(url.replace("dir%20one", "dir%20two"))
        tampered_query = client.get(url.replace("expires=", "expires=9"))
        encoded_differently = client.get(url.replace("%C3%A9", "%c3%a9"))

    assert good.status_code == 200, good.text
    assert good.text == name
    assert tampered_path.status_code == 403
    assert "signature is not valid" in tampered_path.json()["detail"]
    assert tampered_query.status_code == 403
    assert encoded_differently.status_code == 200


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"path": "/v1/a b.mp4", "root_path": ""}, "/v1/a b.mp4"),
        ({"path": "/api/v1/a.mp4", "root_path": "/api"}, "/v1/a.mp4"),
        (
            {"path": "/api/v1/a.mp4", "root_path": "/api/v1", "app_root_path": "/api"},
            "/v1/a.mp4",
        ),
        ({"path": "/apiv1/a.mp4", "root_path": "/api"}, "/apiv1/a.mp4"),
    ],
)
def test_signed_path_leaves_out_the_server_root_path(
    scope: dict[str, str], expected: str
) -> None:
    request = Request({"type": "http", "headers": [], **scope})

    assert signed_path(request) == expected


def test_signed_link_under_a_root_path() -> None:
    signer = UrlSigner(b"k" * 32, "https://example.test/api")
    url = signer.sign("/v1/vidéo.mp4", ttl_seconds=60)
    path = unquote(url.split("?")[0].removeprefix("https://example.test"))
    query = url.split("?")[1].encode()
    request = Request(
        {"type": "http", "headers": [], "path": path, "root_path": "/api"}
        | {"query_string": query}
    )

    verify_signed_request(request, signer)


def test_signed_link_expires_end_to_end(files_server: LiveServer) -> None:
    url = files_server.signer.sign("/signed/a.mp4", ttl_seconds=1, now=time.time() - 10)

    with httpx.Client(timeout=10, trust_env=False) as client:
        response = client.get(url)

    assert response.status_code == 403
    assert "expired" in response.json()["detail"]


# Uploads


def test_streamed_upload_is_stored_intact(
    files_server: LiveServer, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "source.mp4"
    source.write_bytes(data)
    name = "vidéo 日本.mp4"
    with files_server.client() as client:
        warm_up = client.post(
            "/upload/warm-up", params={"max": 10}, files={"file": ("a.mp4", b"a")}
        )
    assert warm_up.status_code == 200

    tracemalloc.start()
    try:
        with files_server.client() as client, source.open("rb") as handle:
            response = client.post(
                "/upload/stream",
                params={"max": 10 * 1024 * 1024},
                data={"title": "Été"},
                files={"file": (name, handle, "video/mp4")},
            )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["size"] == len(data)
    assert body["filename"] == name
    assert body["content_type"] == "video/mp4"
    assert body["fields"] == {"title": "Été"}
    assert body["path"].endswith(".mp4")
    assert peak < len(data) * 0.75


def test_quotes_in_upload_names_survive(files_server: LiveServer) -> None:
    with files_server.client() as client:
        response = client.post(
            "/upload/quotes",
            params={"max": 1000},
            files={"file": (f"C:\\Users\\me\\{ODD_NAME}", b"abc")},
        )

    assert response.status_code == 200, response.text
    assert response.json()["filename"] == ODD_NAME


def test_declared_oversize_upload_is_refused_early(files_server: LiveServer) -> None:
    with files_server.client() as client:
        response = client.post(
            "/upload/early",
            params={"max": 1024 * 1024},
            files={"file": ("big.mp4", b"x" * (3 * 1024 * 1024))},
        )

    assert response.status_code == 413
    assert "1048576 bytes" in response.json()["detail"]
    assert upload_dir(files_server, "early") == []


def test_oversize_upload_is_stopped_while_streaming(files_server: LiveServer) -> None:
    boundary = "b0undary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(40):
            yield b"x" * 65536

    with files_server.client() as client:
        response = client.post(
            "/upload/streaming",
            params={"max": 1024 * 1024},
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    assert response.status_code == 413
    assert upload_dir(files_server, "streaming") == []


def test_missing_file_part_is_400(files_server: LiveServer) -> None:
    with files_server.client() as client:
        response = client.post(
            "/upload/nofile",
            params={"max": 1000},
            data={"title": "x"},
            files={"other": ("a.mp4", b"abc")},
        )

    assert response.status_code == 400
    assert "part named 'other'; name that part 'file'" in response.json()["detail"]
    assert upload_dir(files_server, "nofile") == []


def test_a_form_without_any_file_is_400(files_server: LiveServer) -> None:
    with files_server.client() as client:
        response = client.post(
            "/upload/nofile", params={"max": 1000}, files={"title": (None, "x")}
        )

    assert response.status_code == 400
    assert "no part named 'file'" in response.json()["detail"]


def test_non_multipart_body_is_400(files_server: LiveServer) -> None:
    with files_server.client() as client:
        response = client.post(
            "/upload/json", params={"max": 1000}, json={"file": "abc"}
        )

    assert response.status_code == 400
    assert "application/json" in response.json()["detail"]


def test_empty_file_is_400(files_server: LiveServer) -> None:
    with files_server.client() as client:
        response = client.post(
            "/upload/empty", params={"max": 1000}, files={"file": ("a.mp4", b"")}
        )

    assert response.status_code == 400
    assert "is empty" in response.json()["detail"]
    assert upload_dir(files_server, "empty") == []


def test_field_after_the_file_is_400(files_server: LiveServer) -> None:
    boundary = "xyz"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
        "abc\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="asset_id"\r\n\r\n'
        "other\r\n"
        f"--{boundary}--\r\n"
    )

    with files_server.client() as client:
        response = client.post(
            "/upload/late",
            params={"max": 1000},
            content=body.encode(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    assert response.status_code == 400
    assert "comes after the file" in response.json()["detail"]
    assert upload_dir(files_server, "late") == []


def test_cut_short_upload_is_400(files_server: LiveServer) -> None:
    boundary = "xyz"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
        "abc"
    )

    with files_server.client() as client:
        response = client.post(
            "/upload/short",
            params={"max": 1000},
            content=body.encode(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    assert response.status_code == 400
    assert "cut short" in response.json()["detail"]
    assert upload_dir(files_server, "short") == []


def test_signed_fields_are_checked(files_server: LiveServer) -> None:
    with files_server.client() as client:
        good = client.post(
            "/signed-upload/signed-good",
            params={"max": 1000},
            data=SIGNED_FIELDS,
            files={"file": ("a.mp4", b"abc")},
        )
        wrong = client.post(
            "/signed-upload/signed-wrong",
            params={"max": 1000},
            data={**SIGNED_FIELDS, "asset_id": "asset-2"},
            files={"file": ("a.mp4", b"abc")},
        )
        missing = client.post(
            "/signed-upload/signed-wrong",
            params={"max": 1000},
            data={"asset_id": "asset-1"},
            files={"file": ("a.mp4", b"abc")},
        )

    assert good.status_code == 200, good.text
    assert good.json()["fields"] == SIGNED_FIELDS
    assert wrong.status_code == 403
    assert "'asset_id'" in wrong.json()["detail"]
    assert missing.status_code == 403
    assert "'policy'" in missing.json()["detail"]
    assert upload_dir(files_server, "signed-wrong") == []


def test_disconnect_mid_upload_leaves_no_file(files_server: LiveServer) -> None:
    host, port = files_server.url.removeprefix("http://").split(":")
    boundary = "xyz"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
    ).encode() + b"x" * 300_000
    request = (
        "POST /upload/gone?max=10000000 HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Content-Length: 5000000\r\n\r\n"
    ).encode()

    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(request + head)
        deadline = time.monotonic() + 5
        while not upload_dir(files_server, "gone"):
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.01)

    deadline = time.monotonic() + 5
    while upload_dir(files_server, "gone"):
        assert time.monotonic() < deadline, "the partial upload was left behind"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\clip.mp4", "clip.mp4"),
        ("a\x00b\r\nc\u202e.mp4", "abc.mp4"),
        ("..", "upload"),
        ("", "upload"),
        ("  .hidden.mp4 ", "hidden.mp4"),
        ("vide\u0301o 日本.mp4", "vidéo 日本.mp4"),
    ],
)
def test_sanitize_filename(raw: str, clean: str) -> None:
    assert sanitize_filename(raw) == clean


def test_sanitize_filename_cuts_long_names_keeping_the_extension() -> None:
    clean = sanitize_filename("日" * 300 + ".mp4")

    assert clean.endswith(".mp4")
    assert len(clean.encode()) <= 200
