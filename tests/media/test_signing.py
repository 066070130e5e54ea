from __future__ import annotations

import logging
import stat
import threading
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import pytest
from starlette.datastructures import QueryParams

from tilework.errors import Forbidden
from tilework.media import signing
from tilework.media.signing import (
    KEY_FILE_NAME,
    UrlSigner,
    canonical_path,
    load_or_create_key,
)

BASE = "http://127.0.0.1:8000"
NOW = 1_700_000_000.0
PATH = "/v1/files/renders/run1/node1/task1/output.mp4"


@pytest.fixture
def signer() -> UrlSigner:
    return UrlSigner(b"k" * 32, BASE + "/")


def split(url: str) -> tuple[str, dict[str, str]]:
    """Return the decoded path and the query, as a route would see them."""
    parts = urlsplit(url)
    return unquote(parts.path), dict(parse_qsl(parts.query, keep_blank_values=True))


def test_sign_builds_an_absolute_url_that_verifies(signer: UrlSigner) -> None:
    url = signer.sign(PATH, ttl_seconds=60, now=NOW, params={"disposition": "inline"})

    assert url.startswith(f"{BASE}{PATH}?disposition=inline&expires=1700000060&")
    path, query = split(url)
    assert set(query) == {"disposition", "expires", "signature"}
    signer.verify(path, query, now=NOW + 59)


def test_expired_links_are_refused(signer: UrlSigner) -> None:
    path, query = split(signer.sign(PATH, ttl_seconds=60, now=NOW))

    with pytest.raises(Forbidden, match="This link has expired"):
        signer.verify(path, query, now=NOW + 60)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda path, query: (path + "x", query),
        lambda path, query: (path.replace("run1", "run2"), query),
        lambda path, query: (path, {**query, "expires": "1800000000"}),
        lambda path, query: (path, {**query, "expires": "01700000060"}),
        lambda path, query: (path, {**query, "signature": query["signature"][:-2]}),
        lambda path, query: (path, {**query, "signature": "é" * 43}),
        lambda path, query: (path, {**query, "disposition": "attachment"}),
        lambda path, query: (path, {**query, "extra": "1"}),
        lambda path, query: (
            path,
            {key: value for key, value in query.items() if key != "disposition"},
        ),
        lambda path, query: (
            path,
            {key: value for key, value in query.items() if key != "expires"},
        ),
        lambda path, query: (
            path,
            {key: value for key, value in query.items() if key != "signature"},
        ),
    ],
)
def test_tampered_links_are_refused(signer: UrlSigner, tamper: object) -> None:
    url = signer.sign(PATH, ttl_seconds=60, now=NOW, params={"disposition": "inline"})
    path, query = tamper(*split(url))  # type: ignore[operator]

    with pytest.raises(Forbidden, match="signature is not valid"):
        signer.verify(path, query, now=NOW)


def test_a_repeated_parameter_is_refused(signer: UrlSigner) -> None:
    url = signer.sign(PATH, ttl_seconds=60, now=NOW, params={"disposition": "inline"})
    query = urlsplit(url).query + "&" + urlencode({"disposition": "attachment"})

    with pytest.raises(Forbidden, match="repeats the parameter 'disposition'"):
        signer.verify(PATH, QueryParams(query), now=NOW)


def test_another_key_does_not_verify(signer: UrlSigner) -> None:
    other = UrlSigner(b"o" * 32, BASE)
    path, query = split(other.sign(PATH, ttl_seconds=60, now=NOW))

    with pytest.raises(Forbidden, match="signature is not valid"):
        signer.verify(path, query, now=NOW)


def test_non_ascii_paths_are_signed_in_percent_encoded_form(signer: UrlSigner) -> None:
    decoded = "/v1/files/uploads/a1/vidéo 日本 100% #1?.mp4"

    url = signer.sign(decoded, ttl_seconds=60, now=NOW)

    encoded = urlsplit(url).path
    assert encoded == canonical_path(decoded)
    assert encoded.isascii() and " " not in encoded and "#" not in encoded
    assert "?" not in encoded
    path, query = split(url)
    assert path == decoded
    signer.verify(path, query, now=NOW)


def test_unicode_normalisation_changes_the_path(signer: UrlSigner) -> None:
    path, query = split(signer.sign("/files/vidéo.mp4", ttl_seconds=60, now=NOW))

    with pytest.raises(Forbidden):
        signer.verify(path.replace("é", "e\u0301"), query, now=NOW)


@pytest.mark.parametrize(
    ("path", "ttl", "params", "message"),
    [
        ("files/a.mp4", 60, {}, "must start with '/'"),
        ("/files/a.mp4", 0, {}, "not positive"),
        ("/files/a.mp4", 60, {"expires": "1"}, "reserved"),
        ("/files/a.mp4", 60, {"signature": "x"}, "reserved"),
    ],
)
def test_sign_rejects_bad_arguments(
    signer: UrlSigner, path: str, ttl: int, params: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        signer.sign(path, ttl_seconds=ttl, now=NOW, params=params)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="signing key is empty"):
        UrlSigner(b"", BASE)


def test_configured_key_wins(tmp_path: Path) -> None:
    assert load_or_create_key(tmp_path, "my secret") == b"my secret"
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_generated_key_is_private_and_stable(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    first = load_or_create_key(data_dir, None)
    second = load_or_create_key(data_dir, "  ")

    key_file = data_dir / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first == second
    assert len(first) == 64 and bytes.fromhex(first.decode())
    assert load_or_create_key(tmp_path / "elsewhere", None) != first
    assert load_or_create_key(data_dir, first.decode()) == first
    assert [path.name for path in data_dir.iterdir()] == [KEY_FILE_NAME]


def test_racing_creators_end_up_with_one_key(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def create() -> None:
        barrier.wait()
        keys.append(load_or_create_key(tmp_path, None))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 8 and len(set(keys)) == 1
    assert [path.name for path in tmp_path.iterdir()] == [KEY_FILE_NAME]


def test_readable_key_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / KEY_FILE_NAME
    key_file.write_text("shared secret\n")
    key_file.chmod(0o644)

    with caplog.at_level(logging.WARNING, logger="tilework.media.signing"):
        key = load_or_create_key(tmp_path, None)

    assert key == b"shared secret"
    assert "chmod 600" in caplog.text
    assert "shared secret" not in caplog.text


def test_empty_key_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "_KEY_FILE_WAIT_SECONDS", 0.05)
    key_file = tmp_path / KEY_FILE_NAME
    key_file.write_bytes(b"")
    key_file.chmod(0o600)

    with pytest.raises(ValueError, match="is empty"):
        load_or_create_key(tmp_path, None)
