"""`fetch` against a local HTTP server (no internet): download, resume, verify, unpack safely."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cfosstats.core.errors import InputError, InputWarning
from cfosstats.datasets import fetch as fetch_mod
from cfosstats.datasets.fetch import (
    MARKER,
    SOURCES,
    Source,
    cache_dir,
    fetch,
    find_cached,
)

PREFIX = "repo-master/train_data/"
FILES = {
    "lab-x/images/1.png": b"\x89PNG first image" * 50,
    "lab-x/images/2.png": b"\x89PNG second image" * 50,
    "lab-x/labels/expert_1/1_cFOS.png": b"mask one" * 40,
    "lab-y/images/1.png": b"another lab" * 30,
}


# --------------------------------------------------------------------------------------------
# Archives


def make_zip(entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = 0o120777 << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def make_tar(entries: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return buffer.getvalue()


def dataset(make=make_zip) -> bytes:
    return make({PREFIX + name: data for name, data in FILES.items()})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Local HTTP server with Range support that can cut connections short


@dataclass
class Server:
    base: str
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    cut_after: list[int] = field(default_factory=list)  # one entry per request to cut short
    ranges: bool = True

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def etag(self, name: str) -> str:
        return '"' + sha(self.files[name])[:16] + '"'


def _handler(state: Server):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):  # noqa: N802
            name = self.path.lstrip("/")
            state.requests.append(
                {"path": name, "range": self.headers.get("Range"), "if_range": self.headers.get("If-Range")}
            )
            if name not in state.files:
                self.send_error(404)
                return
            data, start = state.files[name], 0
            if state.ranges and self.headers.get("Range") and self._if_range_holds(name):
                start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("ETag", state.etag(name))
            self.end_headers()
            body = data[start:]
            if state.cut_after:
                body = body[: state.cut_after.pop(0)]
            self.wfile.write(body)  # HTTP/1.0: the connection closes after this

        def _if_range_holds(self, name: str) -> bool:
            tag = self.headers.get("If-Range")
            return tag is None or tag == state.etag(name)

    return Handler


@pytest.fixture
def server():
    state = Server(base="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home" / "cache"
    monkeypatch.setenv("CFOSSTATS_CACHE", str(path))
    monkeypatch.setattr(fetch_mod, "RETRY_DELAY_S", 0.0)
    return path


def datasets_in(cache: Path) -> list[str]:
    """Everything in the cache but the downloads folder (datasets and temporary folders)."""
    return sorted(p.name for p in cache.iterdir() if p.name != ".downloads") if cache.exists() else []


def downloads_in(cache: Path) -> list[str]:
    folder = cache / ".downloads"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def assert_unpacked(root: Path) -> None:
    for name, data in FILES.items():
        assert (root / name).read_bytes() == data
    marker = json.loads((root / MARKER).read_text())
    assert marker["labs"] == ["lab-x", "lab-y"]
    assert marker["prefix"] == PREFIX.rstrip("/")


# --------------------------------------------------------------------------------------------
# cache_dir and registry


def test_cache_dir_prefers_env_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("CFOSSTATS_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CFOSSTATS_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "cfosstats"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert cache_dir() == tmp_path / "h" / ".cache" / "cfosstats"


def test_registry_lists_the_public_sources_honestly():
    github = SOURCES["github"]
    assert github.url == "https://github.com/matjesg/bioimage_analysis/archive/refs/heads/master.zip"
    assert github.sha256 is None and github.prefix == "bioimage_analysis-master/train_data/"
    assert {"wue1", "mue", "wue2"} <= set(github.labs)
    dryad = SOURCES["dryad"]
    assert dryad.url is None and "--archive" in dryad.manual and "bioimage_data.zip" in dryad.manual
    for key, source in SOURCES.items():
        assert source.name == key and source.labs and (source.url or source.manual)


def test_dryad_without_archive_says_how_to_get_it(cache):
    with pytest.raises(InputError, match=r"download bioimage_data.zip by hand .* --archive PATH"):
        fetch("wue1", source="dryad")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lab": "x", "source": "nope"}, "unknown source 'nope': known sources are github, dryad"),
        ({"lab": "inns1", "source": "github"}, "source 'github' does not provide lab 'inns1'"),
        ({"lab": "zzz"}, "no public source provides lab 'zzz'; pass --url URL or --archive PATH"),
        ({"lab": "../x", "url": "http://h/a.zip"}, "invalid lab name '../x'"),
        ({"lab": "x", "url": "http://h/a.zip", "sha256": "abc"}, "--sha256 must be 64"),
    ],
)
def test_bad_arguments_are_input_errors(cache, kwargs, message):
    with pytest.raises(InputError) as info:
        fetch(**kwargs, progress=False)
    assert str(info.value).startswith(message)
    assert not (cache / ".downloads").exists() or downloads_in(cache) == []


# --------------------------------------------------------------------------------------------
# Download, unpack, reuse


@pytest.mark.parametrize("make", [make_zip, make_tar], ids=["zip", "tar.gz"])
def test_fetch_unpacks_marks_and_reuses(server, cache, make):
    data = dataset(make)
    server.files["data.bin"] = data
    root = fetch("x", url=server.url("data.bin"), sha256=sha(data), progress=False)
    assert root == cache / "custom-x"
    assert_unpacked(root)
    marker = json.loads((root / MARKER).read_text())
    assert marker["sha256"] == sha(data) and marker["verified"] is True
    assert marker["url"] == server.url("data.bin")
    assert len(server.requests) == 1
    assert downloads_in(cache) == []  # the archive is removed once unpacked
    assert datasets_in(cache) == ["custom-x"]

    again = fetch("lab-x", url=server.url("data.bin"), sha256=sha(data), progress=False)
    assert again == root and len(server.requests) == 1  # no second request
    assert find_cached("x") == root and find_cached("lab-y") == root
    assert find_cached("z") is None


def test_registry_source_with_prefix_and_progress_bar(server, cache, monkeypatch):
    data = make_zip(
        {"repo-master/other/lab-x/decoy.txt": b"not data"}
        | {PREFIX + name: body for name, body in FILES.items()}
    )
    server.files["master.zip"] = data
    source = Source("test", "test data", ("x",), server.url("master.zip"), sha(data), prefix=PREFIX)
    monkeypatch.setitem(SOURCES, "test", source)
    root = fetch("x", progress=True)  # the first source providing lab x
    assert root == cache / "test"
    assert_unpacked(root)
    assert not (root / "decoy.txt").exists()
    assert find_cached("x") == root


def test_registry_source_fetched_from_an_archive_is_reused(server, cache, monkeypatch, tmp_path):
    data = dataset()
    archive = tmp_path / "master.zip"
    archive.write_bytes(data)
    url = server.url("master.zip")
    monkeypatch.setitem(SOURCES, "test", Source("test", "test", ("x",), url, sha(data)))
    root = fetch("x", source="test", archive=archive)
    assert fetch("x", source="test", progress=False) == root
    assert server.requests == []


def test_lab_in_several_places_without_prefix_is_ambiguous(cache, tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"a/lab-x/1.png": b"1", "b/lab-x/1.png": b"2"}))
    with pytest.raises(InputError) as info:
        fetch("x", archive=archive, sha256=sha(archive.read_bytes()))
    assert str(info.value) == f"{archive}: holds 'lab-x/' in several places (a, b)"


def test_local_archive_is_verified_and_kept(cache, tmp_path):
    data = dataset(make_tar)
    archive = tmp_path / "bioimage_data.tar.gz"
    archive.write_bytes(data)
    with pytest.raises(InputError) as info:
        fetch("x", archive=archive, sha256="0" * 64)
    assert str(info.value) == f"{archive}: SHA-256 mismatch: expected {'0' * 64}, got {sha(data)}"
    assert archive.exists() and datasets_in(cache) == []

    root = fetch("x", archive=archive, sha256=sha(data))
    assert_unpacked(root)
    assert json.loads((root / MARKER).read_text())["archive"] == str(archive.resolve())
    assert archive.exists()


def test_local_archive_without_digest_warns_and_records_unverified(cache, tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(dataset())
    with pytest.warns(InputWarning, match="used without verification"):
        root = fetch("x", archive=archive)
    assert json.loads((root / MARKER).read_text())["verified"] is False


def test_download_without_digest_is_refused_until_allowed(server, cache):
    data = dataset()
    server.files["a.zip"] = data
    url = server.url("a.zip")
    with pytest.raises(InputError) as info:
        fetch("x", url=url, progress=False)
    assert str(info.value).startswith(
        f"{url}: no published SHA-256 to verify the download against (it has SHA-256 {sha(data)})"
    )
    assert datasets_in(cache) == [] and len(downloads_in(cache)) == 1  # kept for the next call

    with pytest.warns(InputWarning, match=sha(data)):
        root = fetch("x", url=url, progress=False, allow_unverified=True)
    assert len(server.requests) == 1  # the kept download was used
    marker = json.loads((root / MARKER).read_text())
    assert marker["verified"] is False and marker["sha256"] == sha(data)


# --------------------------------------------------------------------------------------------
# Interrupted downloads


def test_interrupted_download_leaves_a_part_and_resumes(server, cache):
    data = dataset()
    half = len(data) // 2
    server.files["a.zip"] = data
    server.cut_after = [half]
    url = server.url("a.zip")
    with pytest.raises(InputError) as info:
        fetch("x", url=url, sha256=sha(data), progress=False, retries=0)
    assert str(info.value) == (
        f"{url}: download interrupted after {half} of {len(data)} bytes; run the same command again to resume"
    )
    assert datasets_in(cache) == []
    parts = [n for n in downloads_in(cache) if n.endswith(".part")]
    assert len(parts) == 1 and (cache / ".downloads" / parts[0]).stat().st_size == half

    root = fetch("x", url=url, sha256=sha(data), progress=False, retries=0)
    assert server.requests[-1]["range"] == f"bytes={half}-"
    assert server.requests[-1]["if_range"] == server.etag("a.zip")
    assert_unpacked(root)
    assert downloads_in(cache) == []


def test_retries_resume_within_one_call(server, cache):
    data = dataset(make_tar)
    server.files["a.tgz"] = data
    quarter = len(data) // 4
    server.cut_after = [quarter, quarter]
    root = fetch("x", url=server.url("a.tgz"), sha256=sha(data), progress=False, retries=2)
    ranges = [r["range"] for r in server.requests]
    assert ranges == [None, f"bytes={quarter}-", f"bytes={2 * quarter}-"]
    assert_unpacked(root)


def test_server_without_range_support_restarts(server, cache):
    data = dataset()
    server.files["a.zip"] = data
    server.ranges = False
    server.cut_after = [len(data) // 3]
    root = fetch("x", url=server.url("a.zip"), sha256=sha(data), progress=False, retries=1)
    assert server.requests[-1]["range"] == f"bytes={len(data) // 3}-"  # asked, got a 200
    assert_unpacked(root)


def test_file_changed_between_attempts_restarts(server, cache):
    old = dataset()
    server.files["a.zip"] = old
    server.cut_after = [len(old) // 2]
    url = server.url("a.zip")
    with pytest.raises(InputError, match="interrupted"):
        fetch("x", url=url, progress=False, retries=0)
    new = dataset(make_tar)
    server.files["a.zip"] = new  # If-Range no longer matches: the server sends it whole
    root = fetch("x", url=url, sha256=sha(new), progress=False, retries=0)
    assert_unpacked(root)


# --------------------------------------------------------------------------------------------
# Verification failures


def test_checksum_mismatch_deletes_the_download(server, cache):
    data = dataset()
    server.files["a.zip"] = data
    wrong = "f" * 64
    with pytest.raises(InputError) as info:
        fetch("x", url=server.url("a.zip"), sha256=wrong, progress=False)
    message = str(info.value)
    assert message.startswith(str(cache / ".downloads"))
    assert f"SHA-256 mismatch: expected {wrong}, got {sha(data)}; the file was deleted" in message
    assert downloads_in(cache) == [] and datasets_in(cache) == []
    assert find_cached("x") is None


def test_failed_refetch_keeps_the_old_dataset(server, cache):
    good = dataset()
    server.files["a.zip"] = good
    root = fetch("x", url=server.url("a.zip"), sha256=sha(good), progress=False)
    server.files["b.zip"] = make_zip({PREFIX + "lab-x/../../evil.txt": b"x"})
    with pytest.raises(InputError, match="path traversal"):
        fetch("x", url=server.url("b.zip"), sha256=sha(server.files["b.zip"]), progress=False)
    assert_unpacked(root)
    assert datasets_in(cache) == ["custom-x"]


def test_404_names_the_url(server, cache):
    url = server.url("missing.zip")
    with pytest.raises(InputError) as info:
        fetch("x", url=url, sha256="0" * 64, progress=False)
    assert str(info.value) == f"{url}: download failed (HTTP 404 Not Found)"
    assert datasets_in(cache) == []


def test_unreachable_server_names_the_url(cache):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/a.zip"
    with pytest.raises(InputError) as info:
        fetch("x", url=url, sha256="0" * 64, progress=False)
    assert str(info.value) == f"{url}: download failed (connection refused)"


def test_not_an_archive_is_refused_and_deleted(server, cache):
    server.files["a.zip"] = b"<html>not an archive</html>"
    with pytest.raises(InputError, match="not a zip or tar archive"):
        fetch("x", url=server.url("a.zip"), sha256=sha(server.files["a.zip"]), progress=False)
    assert downloads_in(cache) == [] and datasets_in(cache) == []


def test_archive_without_the_lab_is_refused(cache, tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"repo/lab-y/images/1.png": b"y"}))
    with pytest.raises(InputError) as info:
        fetch("x", archive=archive, sha256=sha(archive.read_bytes()))
    assert str(info.value) == f"{archive}: holds no 'lab-x/' folder"
    assert datasets_in(cache) == []


# --------------------------------------------------------------------------------------------
# Malicious archives


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info


GOOD = {PREFIX + "lab-x/images/1.png": b"ok"}
LAB = PREFIX + "lab-x/"

MALICIOUS = [
    ("zip", make_zip(GOOD | {"../evil.txt": b"x"}), "../evil.txt", "path traversal"),
    ("zip", make_zip(GOOD | {"/abs.txt": b"x"}), "/abs.txt", "absolute path"),
    (
        "zip",
        make_zip(GOOD | {LAB + "../../../evil.txt": b"x"}),
        LAB + "../../../evil.txt",
        "path traversal",
    ),
    ("zip", make_zip(GOOD | {"..\\evil.txt": b"x"}), "..\\evil.txt", "path traversal"),
    (
        "zip",
        make_zip(GOOD, symlinks={LAB + "passwd": "/etc/passwd"}),
        LAB + "passwd",
        "symbolic link to '/etc/passwd'",
    ),
    ("tar", make_tar(GOOD | {"../evil.txt": b"x"}), "../evil.txt", "path traversal"),
    ("tar", make_tar(GOOD | {"/abs.txt": b"x"}), "/abs.txt", "absolute path"),
    (
        "tar",
        make_tar(GOOD, [_link(LAB + "passwd", "/etc/passwd")]),
        LAB + "passwd",
        "symbolic link to '/etc/passwd'",
    ),
    (
        "tar",
        make_tar(GOOD, [_link(LAB + "up", "../../../../evil.txt")]),
        LAB + "up",
        "symbolic link to '../../../../evil.txt'",
    ),
    (
        "tar",
        make_tar(GOOD, [_link(LAB + "hard", "/etc/passwd", tarfile.LNKTYPE)]),
        LAB + "hard",
        "hard link to '/etc/passwd'",
    ),
    ("tar", make_tar(GOOD, [_device(LAB + "null")]), LAB + "null", "device or special file"),
]


@pytest.mark.parametrize(
    ("kind", "data", "entry", "reason"),
    MALICIOUS,
    ids=[f"{k}:{e.rsplit('/', 1)[-1]}" for k, _, e, _ in MALICIOUS],
)
def test_unsafe_entries_are_refused(cache, tmp_path, kind, data, entry, reason):
    archive = tmp_path / f"bad.{kind}"
    archive.write_bytes(data)
    with pytest.raises(InputError) as info:
        fetch("x", archive=archive, sha256=sha(data))
    assert str(info.value) == f"{archive}: unsafe entry '{entry}' ({reason})"
    assert datasets_in(cache) == []  # no dataset, no half-unpacked folder
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert [str(p) for p in written if not p.parts[0] == "home"] == [archive.name]
    assert not Path("/abs.txt").exists()


def test_unsafe_download_is_deleted(server, cache):
    data = make_tar(GOOD, [_link(LAB + "passwd", "/etc/passwd")])
    server.files["a.tgz"] = data
    with pytest.raises(InputError, match=r"unsafe entry .* \(symbolic link to '/etc/passwd'\)"):
        fetch("x", url=server.url("a.tgz"), sha256=sha(data), progress=False)
    assert downloads_in(cache) == [] and datasets_in(cache) == []


def test_stale_temporary_folders_are_cleaned(server, cache):
    data = dataset()
    server.files["a.zip"] = data
    stale = cache / ".custom-x.abc123.part" / "lab-x"
    stale.mkdir(parents=True)
    root = fetch("x", url=server.url("a.zip"), sha256=sha(data), progress=False)
    assert datasets_in(cache) == ["custom-x"]
    assert find_cached("x") == root


def test_find_cached_ignores_folders_without_marker(cache):
    (cache / "github" / "lab-wue1").mkdir(parents=True)
    assert find_cached("wue1") is None
    (cache / "github" / MARKER).write_text("{}")
    assert find_cached("wue1") == cache / "github"
    assert find_cached("wue1", source="dryad") is None
