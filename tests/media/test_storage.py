from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from tilework.errors import NotFound
from tilework.media.storage import LocalStorage, Storage

KEY = "renders/run1/node1/task1/output.mp4"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media")


def leftovers(root: Path) -> list[Path]:
    return list(root.rglob(".tmp-*"))


@pytest.mark.parametrize(
    "key",
    [
        "",
        "..",
        "../outside.mp4",
        "uploads/../../outside.mp4",
        "/etc/passwd",
        "uploads\\a\\b.mp4",
        "uploads/a\x00b.mp4",
        "uploads/a\nb.mp4",
        "uploads//b.mp4",
        "./uploads/b.mp4",
        "uploads/b/",
    ],
)
def test_path_rejects_keys_that_are_not_plain_relative_paths(
    storage: LocalStorage, key: str
) -> None:
    with pytest.raises(ValueError, match="storage key"):
        storage.path(key)


def test_path_accepts_non_ascii_names(storage: LocalStorage) -> None:
    path = storage.path("uploads/a1/vidéo 日本.mp4")

    assert path == storage.root / "uploads" / "a1" / "vidéo 日本.mp4"


def test_path_rejects_a_symbolic_link_out_of_the_root(
    storage: LocalStorage, tmp_path: Path
) -> None:
    storage.root.mkdir(parents=True)
    (storage.root / "uploads").symlink_to(tmp_path)

    with pytest.raises(ValueError, match="symbolic link"):
        storage.path("uploads/secret.txt")


def test_put_file_copies_and_keeps_the_source(
    storage: LocalStorage, tmp_path: Path
) -> None:
    src = tmp_path / "out.mp4"
    src.write_bytes(b"video bytes")

    dest = storage.put_file(src, KEY)

    assert dest.read_bytes() == b"video bytes"
    assert src.exists()
    assert storage.exists(KEY)
    assert storage.size(KEY) == len(b"video bytes")
    assert leftovers(storage.root) == []


def test_put_file_twice_replaces_the_file(
    storage: LocalStorage, tmp_path: Path
) -> None:
    src = tmp_path / "out.mp4"
    src.write_bytes(b"first")
    storage.put_file(src, KEY)

    src.write_bytes(b"second version")
    storage.put_file(src, KEY)

    assert storage.path(KEY).read_bytes() == b"second version"
    assert leftovers(storage.root) == []


def test_put_file_move_takes_the_source(storage: LocalStorage, tmp_path: Path) -> None:
    src = tmp_path / "out.mp4"
    src.write_bytes(b"moved")

    storage.put_file(src, KEY, move=True)

    assert storage.path(KEY).read_bytes() == b"moved"
    assert not src.exists()


def test_put_file_move_copies_across_devices(
    storage: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "out.mp4"
    src.write_bytes(b"far away")

    def cross_device(a: object, b: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", cross_device)
    storage.put_file(src, KEY, move=True)

    assert storage.path(KEY).read_bytes() == b"far away"
    assert not src.exists()


def test_put_file_of_a_missing_source_leaves_nothing(
    storage: LocalStorage, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        storage.put_file(tmp_path / "missing.mp4", KEY)

    assert not storage.exists(KEY)
    assert leftovers(storage.root) == []


def test_open_write_moves_the_file_into_place(storage: LocalStorage) -> None:
    with storage.open_write(KEY) as handle:
        handle.write(b"abc")
        assert not storage.exists(KEY)

    assert storage.path(KEY).read_bytes() == b"abc"
    assert leftovers(storage.root) == []


def test_open_write_error_keeps_the_old_file_and_no_temp(
    storage: LocalStorage,
) -> None:
    with storage.open_write(KEY) as handle:
        handle.write(b"old")

    with pytest.raises(RuntimeError), storage.open_write(KEY) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("encoder crashed")

    assert storage.path(KEY).read_bytes() == b"old"
    assert leftovers(storage.root) == []


def test_write_path_keeps_the_extension_and_moves_into_place(
    storage: LocalStorage,
) -> None:
    with storage.write_path(KEY) as temp:
        assert temp.suffix == ".mp4"
        assert temp.parent == storage.path(KEY).parent
        temp.write_bytes(b"from ffmpeg")

    assert storage.path(KEY).read_bytes() == b"from ffmpeg"


def test_write_path_without_a_file_fails_cleanly(storage: LocalStorage) -> None:
    with (
        pytest.raises(FileNotFoundError, match="Nothing was written"),
        storage.write_path(KEY),
    ):
        pass

    assert not storage.exists(KEY)


def test_delete_and_size_of_missing_keys(storage: LocalStorage, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_bytes(b"x")
    storage.put_file(src, "uploads/a/a.txt")

    assert storage.delete("uploads/a/a.txt") is True
    assert storage.delete("uploads/a/a.txt") is False
    assert not storage.exists("uploads/a/a.txt")
    with pytest.raises(NotFound, match=r"uploads/a/a\.txt"):
        storage.size("uploads/a/a.txt")


def test_readers_never_see_a_partial_file(
    storage: LocalStorage, tmp_path: Path
) -> None:
    versions = [bytes([65]) * 200_000, bytes([66]) * 300_000]
    sources = []
    for index, data in enumerate(versions):
        src = tmp_path / f"v{index}.bin"
        src.write_bytes(data)
        sources.append(src)
    storage.put_file(sources[0], KEY)
    stop = threading.Event()

    def writer() -> None:
        index = 0
        while not stop.is_set():
            storage.put_file(sources[index % 2], KEY)
            index += 1

    thread = threading.Thread(target=writer)
    thread.start()
    seen = set()
    deadline = time.monotonic() + 0.5
    try:
        while time.monotonic() < deadline:
            seen.add(storage.path(KEY).read_bytes())
    finally:
        stop.set()
        thread.join()

    assert seen <= set(versions)
    assert leftovers(storage.root) == []


def test_local_storage_is_a_storage(storage: LocalStorage) -> None:
    backend: Storage = storage

    assert backend.exists("uploads/none.mp4") is False
