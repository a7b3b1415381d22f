"""A small local stand-in for the Hugging Face Hub, for trying the publish-and-load loop offline.

`rs-retrieval hub serve-local` runs it; the test suite uses it for every Hub round-trip. It is a
stdlib HTTP server on 127.0.0.1 that keeps every repository in memory (gone when it stops), knows
one user, checks no token and is not a production Hub: it implements the endpoint subset that
`huggingface_hub` 2.x, transformers, datasets and evaluate use to create a repo, upload a folder
in one commit (regular files inline, binaries through the Git LFS basic transfer), validate a
card's YAML as the Hub does, and download files (HEAD/GET `resolve` with `X-Repo-Commit`, `ETag`,
Range):

    POST /api/repos/create                    POST /api/validate-yaml          GET /api/whoami-v2
    GET  /api/{models|datasets|spaces}/{ns}/{name}[/revision/{rev}]
    GET  /api/.../{ns}/{name}/refs | /tree/{rev}[/{path}] | /commits/{rev}
    POST /api/.../{ns}/{name}/paths-info/{rev} | /preupload/{rev} | /commit/{rev}   (NDJSON)
    POST /[datasets/|spaces/]{ns}/{name}.git/info/lfs/objects/batch    PUT /__lfs/{sha256}
    HEAD|GET /[datasets/|spaces/]{ns}/{name}/resolve/{rev}/{path}

A commit is applied under one lock after every LFS object it names has been checked, so a
client that dies (or a server that is killed) before the commit request leaves the branch as it
was. `kill()` simulates a crash: the listening socket and live connections close at once.
HF client libraries read `HF_ENDPOINT` at import, so clients are configured through the
environment before they start (`client_env`).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import itertools
import json
import os
import re
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from ..cards.sections import HUB_LICENSE_IDS

#: Patterns stored with Git LFS by the initial `.gitattributes` of a new repo (subset of the Hub's).
LFS_PATTERNS = (
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.safetensors",
    "*.tar",
    "*.tflite",
    "*.zip",
    "*.zst",
    "*tfevents*",
    "*.png",
    "*.jpg",
    "*.jpeg",
    "*.tif",
    "*.tiff",
)
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()
REGULAR_MAX_BYTES = 10 * 1024 * 1024
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LICENSES = set(HUB_LICENSE_IDS)
ASCII_NAME = r"[A-Za-z0-9][\w.-]*"
#: Default lifetime of a server started by a test: it never outlives a hung test.
MAX_LIFETIME_S = 900


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class Blob:
    """A file in a commit: inline `content`, or an LFS pointer to `sha256` in the hub's object store."""

    size: int
    content: bytes | None = None
    sha256: str | None = None

    @property
    def oid(self) -> str:
        return git_blob_oid(self.content if self.sha256 is None else lfs_pointer(self.sha256, self.size))

    def entry(self, path: str) -> dict:
        entry = {"type": "file", "oid": self.oid, "size": self.size, "path": path}
        if self.sha256 is not None:
            entry["lfs"] = {
                "oid": self.sha256,
                "size": self.size,
                "pointerSize": len(lfs_pointer(self.sha256, self.size)),
            }
        return entry


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    files: dict[str, Blob]
    date: str = field(default_factory=_now)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    created_at: str = field(default_factory=_now)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit


class LocalHub:
    """Server state plus the HTTP server thread; use as a context manager (`with LocalHub() as hub`)."""

    def __init__(
        self, fail_during_lfs_upload: bool = False, port: int = 0, max_lifetime_s: float | None = MAX_LIFETIME_S
    ):
        """`port` 0 picks a free one; `max_lifetime_s` None serves until `stop` (the command's mode)."""
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.log: list[tuple[str, str, int]] = []
        self.errors: list[str] = []
        self.fail_during_lfs_upload = fail_during_lfs_upload
        self.port, self.max_lifetime_s = port, max_lifetime_s
        self._counter = itertools.count()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._deadline = threading.Timer(0, lambda: None)  # replaced by `start`

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> LocalHub:
        if self._server is not None:
            raise RuntimeError("LocalHub is already running")
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.hub = self
        server.dead = False
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        if self.max_lifetime_s is not None:
            self._deadline = threading.Timer(self.max_lifetime_s, self.stop)
            self._deadline.daemon = True
            self._deadline.start()
        return self

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalHub is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        server, self._server = self._server, None
        self._deadline.cancel()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self._close_connections()

    def kill(self) -> None:
        """Crash: answer nothing more, drop every open connection, stop listening."""
        server, self._server = self._server, None
        if server is None:
            return
        self._deadline.cancel()
        server.dead = True
        try:
            server.socket.shutdown(socket.SHUT_RDWR)  # stop listening: new connections are refused
        except OSError:
            pass
        server.socket.close()
        threading.Thread(target=server.shutdown, daemon=True).start()
        self._close_connections()

    def _close_connections(self) -> None:
        with self.lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- inspection for tests ----------------------------------------------------------------
    def repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def branch_head(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> str | None:
        repo = self.repo(repo_id, repo_type)
        return None if repo is None else repo.branches.get(branch)

    def file_bytes(self, repo_id: str, path: str, repo_type: str = "model", revision: str = "main") -> bytes:
        blob = self.repo(repo_id, repo_type).resolve(revision).files[path]
        return blob.content if blob.sha256 is None else self.lfs_objects[blob.sha256]

    def requests_to(self, method: str, pattern: str) -> list[tuple[str, str, int]]:
        return [entry for entry in self.log if entry[0] == method and re.search(pattern, entry[1])]

    # -- state changes -------------------------------------------------------------------------
    def _new_oid(self, *parts: str) -> str:
        return hashlib.sha1("\0".join((*parts, str(next(self._counter)), str(time.time_ns()))).encode()).hexdigest()

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, f"You already created this {repo_type} repo")
            repo = Repo(repo_type, repo_id, private)
            first = Commit(
                self._new_oid(repo_id, "initial"),
                None,
                "initial commit",
                {".gitattributes": Blob(len(GITATTRIBUTES), GITATTRIBUTES)},
            )
            repo.commits[first.oid] = first
            repo.branches["main"] = first.oid
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def commit(self, repo: Repo, branch: str, lines: list[dict]) -> Commit:
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        with self.lock:
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            parent = repo.commits[repo.branches[branch]]
            if header.get("parentCommit") not in (None, parent.oid):
                raise HubError(412, f"parent commit {header['parentCommit']} is not the head of {branch}")
            files = dict(parent.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                path = value.get("path", "")
                if not path or path.startswith("/") or ".." in path.split("/"):
                    raise HubError(400, f"invalid path {path!r} in commit")
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HubError(400, f"unsupported encoding for {path}")
                    content = base64.b64decode(value["content"])
                    files[path] = Blob(len(content), content)
                elif key == "lfsFile":
                    oid = value.get("oid", "")
                    if oid not in self.lfs_objects:
                        raise HubError(422, f"LFS object {oid} for {path} was never uploaded")
                    files[path] = Blob(len(self.lfs_objects[oid]), sha256=oid)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    for name in [n for n in files if n.startswith(prefix)]:
                        del files[name]
                else:
                    raise HubError(400, f"unsupported commit operation {key!r}")
            new = Commit(
                self._new_oid(repo.repo_id, parent.oid, header.get("summary", "")),
                parent.oid,
                header.get("summary", ""),
                files,
            )
            repo.commits[new.oid] = new
            repo.branches[branch] = new.oid
            return new


def _card_data(commit: Commit, hub: LocalHub) -> dict | None:
    blob = commit.files.get("README.md")
    if blob is None:
        return None
    content = (blob.content if blob.sha256 is None else hub.lfs_objects[blob.sha256]).decode("utf-8")
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, flags=re.DOTALL)
    return yaml.safe_load(match.group(1)) if match else None


def validate_card_yaml(content: str) -> list[str]:
    """Errors the Hub would report for a README's YAML block (licence id, model-index shape)."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, flags=re.DOTALL)
    if match is None:
        return []
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        return [f"YAML parse error: {err}"]
    if not isinstance(data, dict):
        return ["metadata must be a YAML mapping"]
    errors = []
    licence = data.get("license")
    if licence is not None and licence not in LICENSES:
        errors.append(f'"license" must be a known licence id, got {licence!r}')
    if licence == "other" and "license_name" not in data:
        errors.append('"license_name" is required when "license" is "other"')
    for index, model in enumerate(data.get("model-index") or []):
        for r, result in enumerate(model.get("results", [])):
            where = f"model-index[{index}].results[{r}]"
            if not isinstance(result.get("task"), dict) or "type" not in result["task"]:
                errors.append(f"{where}.task.type is required")
            if not isinstance(result.get("dataset"), dict) or not {"type", "name"} <= set(result["dataset"]):
                errors.append(f"{where}.dataset needs type and name")
            for m, metric in enumerate(result.get("metrics", [])):
                if "type" not in metric or not isinstance(metric.get("value"), (int, float)):
                    errors.append(f"{where}.metrics[{m}] needs a type and a numeric value")
    return errors


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"

    @property
    def hub(self) -> LocalHub:
        return self.server.hub

    def setup(self):
        super().setup()
        with self.hub.lock:
            self.hub._connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.hub.lock:
                self.hub._connections.discard(self.connection)

    def log_message(self, *args):  # keep test output clean; requests are in hub.log
        pass

    # -- plumbing ------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(
        self, status: int, body: bytes = b"", headers: dict | None = None, content_type: str = "application/json"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.hub.log.append((self.command, self.path, status))

    def _json(self, data, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _error(self, err: HubError) -> None:
        self.close_connection = True  # the request body may be unread: do not reuse this connection
        headers = {"X-Error-Message": err.message, "Connection": "close"}
        if err.code:
            headers["X-Error-Code"] = err.code
        if err.commit:
            headers["X-Repo-Commit"] = err.commit
        self._json({"error": err.message}, err.status, headers)

    def _repo(self, kind: str, namespace: str, name: str) -> Repo:
        repo = self.hub.repo(f"{namespace}/{name}", REPO_TYPES[kind])
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(unquote(revision))
        if commit is None:
            raise HubError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
        return commit

    def _dispatch(self, routes) -> None:
        if self.server.dead:  # killed: drop the request without an answer
            self.close_connection = True
            return
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        try:
            for method, pattern, handler in routes:
                match = re.fullmatch(pattern, url.path)
                if method == self.command and match:
                    return handler(self, **match.groupdict())
            raise HubError(404, f"no route for {self.command} {url.path}")
        except HubError as err:
            self._error(err)
        except Exception:
            self.hub.errors.append(traceback.format_exc())
            self._error(HubError(500, "LocalHub internal error"))

    do_GET = do_HEAD = do_POST = do_PUT = lambda self: self._dispatch(ROUTES)

    # -- API -----------------------------------------------------------------------------------
    def create_repo(self):
        payload = json.loads(self._body())
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or 'tester'}/{payload['name']}"
        url = f"{self.hub.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"
        try:
            self.hub.create_repo(
                repo_type, repo_id, payload.get("visibility") == "private" or bool(payload.get("private"))
            )
        except HubError as err:
            return self._json({"error": err.message, "url": url}, err.status)
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def validate_yaml(self):
        errors = validate_card_yaml(json.loads(self._body())["content"])
        self._json({"errors": [{"message": e} for e in errors], "warnings": []}, 400 if errors else 200)

    def whoami(self):
        self._json(
            {"type": "user", "name": "tester", "fullname": "Tester", "orgs": [], "auth": {"type": "access_token"}}
        )

    def repo_info(self, kind, namespace, name, revision=None):
        repo = self._repo(kind, namespace, name)
        commit = self._commit(repo, revision or "main")
        blobs = self.query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling = {"rfilename": path}
            if blobs:
                sibling.update(size=blob.size, blobId=blob.oid)
                if blob.sha256:
                    sibling["lfs"] = {
                        "size": blob.size,
                        "sha256": blob.sha256,
                        "pointerSize": len(lfs_pointer(blob.sha256, blob.size)),
                    }
            siblings.append(sibling)
        card = _card_data(commit, self.hub)
        info = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": namespace,
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": (card or {}).get("tags", []),
            "cardData": card,
            "siblings": siblings,
            "usedStorage": sum(b.size for b in commit.files.values()),
        }
        if kind == "models":
            info["modelId"] = repo.repo_id
        self._json(info)

    def refs(self, kind, namespace, name):
        repo = self._repo(kind, namespace, name)
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid} for b, oid in repo.branches.items()]
        self._json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def commits(self, kind, namespace, name, revision):
        repo = self._repo(kind, namespace, name)
        commit, history = self._commit(repo, revision), []
        while commit is not None:
            history.append(
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": "",
                    "authors": [{"user": "tester"}],
                    "date": commit.date,
                }
            )
            commit = repo.commits.get(commit.parent) if commit.parent else None
        self._json(history)

    def _entries(self, commit: Commit, expand: bool) -> dict[str, dict]:
        """Every file and folder of `commit`, keyed by path."""
        entries = {path: blob.entry(path) for path, blob in commit.files.items()}
        for path in commit.files:
            parts = path.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folder = "/".join(parts[:depth])
                entries.setdefault(
                    folder,
                    {
                        "type": "directory",
                        "oid": hashlib.sha1(f"{commit.oid}:{folder}".encode()).hexdigest(),
                        "size": 0,
                        "path": folder,
                    },
                )
        if expand:
            for entry in entries.values():
                entry["lastCommit"] = {"id": commit.oid, "title": commit.title, "date": commit.date}
        return entries

    def tree(self, kind, namespace, name, revision, path=""):
        commit = self._commit(self._repo(kind, namespace, name), revision)
        path = unquote(path or "").strip("/")
        expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries = self._entries(commit, expand)
        if path and entries.get(path, {}).get("type") != "directory":
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound", commit.oid)
        prefix = f"{path}/" if path else ""
        listed = [
            e
            for p, e in sorted(entries.items())
            if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])
        ]
        self._json(listed)

    def paths_info(self, kind, namespace, name, revision):
        commit = self._commit(self._repo(kind, namespace, name), revision)
        body = self._body().decode()
        form = parse_qs(body) if "json" not in self.headers.get("Content-Type", "") else json.loads(body)
        expand = str(
            form.get("expand", ["false"])[0] if isinstance(form.get("expand"), list) else form.get("expand")
        ).lower() in ("1", "true")
        entries = self._entries(commit, expand)
        self._json([entries[p.strip("/")] for p in form.get("paths", []) if p.strip("/") in entries])

    def preupload(self, kind, namespace, name, revision):
        commit = self._commit(self._repo(kind, namespace, name), revision)
        files = []
        for item in json.loads(self._body())["files"]:
            path, sample = item["path"], base64.b64decode(item["sample"])
            lfs = (
                item["size"] > REGULAR_MAX_BYTES
                or b"\0" in sample
                or any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], p) for p in LFS_PATTERNS)
            )
            existing = commit.files.get(path)
            oid = None if existing is None else (existing.sha256 or existing.oid)
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self._json({"files": files, "commitOid": commit.oid})

    def create_commit(self, kind, namespace, name, revision):
        repo = self._repo(kind, namespace, name)
        if self.query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by LocalHub")
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        new = self.hub.commit(repo, unquote(revision), lines)
        url = f"{self.hub.endpoint}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{new.oid}"
        self._json({"commitUrl": url, "commitOid": new.oid, "pullRequestUrl": None})

    def lfs_batch(self, namespace, name, datasets=None):
        payload = json.loads(self._body())
        if payload.get("operation") != "upload":
            raise HubError(400, "only LFS uploads are supported")
        self._repo(datasets.rstrip("/") if datasets else "models", namespace, name)
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs_objects:
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.endpoint}/__lfs/{obj['oid']}?size={obj['size']}", "header": {}}
                }
            objects.append(entry)
        self._send(
            200,
            json.dumps({"transfer": "basic", "objects": objects}).encode(),
            content_type="application/vnd.git-lfs+json",
        )

    def lfs_put(self, oid):
        size = int(self.query["size"][0])
        if self.hub.fail_during_lfs_upload:
            self.rfile.read(max(1, size // 2))
            self.hub.kill()
            self.close_connection = True
            return
        data = self._body()
        if len(data) != size or hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"uploaded object does not match oid {oid} / size {size}")
        with self.hub.lock:
            self.hub.lfs_objects[oid] = data
        self._send(200)

    def resolve(self, namespace, name, revision, path, datasets=None):
        repo = self._repo(datasets.rstrip("/") if datasets else "models", namespace, name)
        commit = self._commit(repo, revision)
        path = unquote(path)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit.oid)
        data = blob.content if blob.sha256 is None else self.hub.lfs_objects[blob.sha256]
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.sha256 or blob.oid}"', "Accept-Ranges": "bytes"}
        status = 200
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if ranged and data:
            start = int(ranged.group(1)) if ranged.group(1) else max(0, len(data) - int(ranged.group(2)))
            end = int(ranged.group(2)) if ranged.group(1) and ranged.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            if start > end:
                raise HubError(416, f"range {self.headers['Range']} outside {len(data)} bytes")
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(status, data, headers, content_type="application/octet-stream")


REPO = rf"(?P<namespace>{ASCII_NAME})/(?P<name>{ASCII_NAME})"
API = rf"/api/(?P<kind>models|datasets|spaces)/{REPO}"
ROUTES = [
    ("POST", r"/api/repos/create", _Handler.create_repo),
    ("POST", r"/api/validate-yaml", _Handler.validate_yaml),
    ("GET", r"/api/whoami-v2", _Handler.whoami),
    ("GET", rf"{API}/refs", _Handler.refs),
    ("GET", rf"{API}/commits/(?P<revision>[^/]+)", _Handler.commits),
    ("GET", rf"{API}/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?", _Handler.tree),
    ("POST", rf"{API}/paths-info/(?P<revision>[^/]+)", _Handler.paths_info),
    ("POST", rf"{API}/preupload/(?P<revision>[^/]+)", _Handler.preupload),
    ("POST", rf"{API}/commit/(?P<revision>[^/]+)", _Handler.create_commit),
    ("GET", rf"{API}(?:/revision/(?P<revision>[^/]+))?", _Handler.repo_info),
    (
        "POST",
        rf"/(?P<datasets>datasets/|spaces/)?(?P<namespace>{ASCII_NAME})/(?P<name>{ASCII_NAME}?)\.git/info/lfs/objects/batch",
        _Handler.lfs_batch,
    ),
    ("PUT", r"/__lfs/(?P<oid>[0-9a-f]{64})", _Handler.lfs_put),
    ("GET", rf"/(?P<datasets>datasets/|spaces/)?{REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", _Handler.resolve),
    ("HEAD", rf"/(?P<datasets>datasets/|spaces/)?{REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", _Handler.resolve),
]


#: Client settings besides HF_ENDPOINT/HF_HOME; `rs-retrieval hub serve-local` prints them as exports.
CLIENT_SETTINGS = {
    "HF_TOKEN": "hf_local_token",
    "HF_HUB_DISABLE_XET": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "0",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def client_env(endpoint: str, hf_home: str | Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for an HF client process that talks to the hub at `endpoint` (the HF libraries
    read it at import): `base` (default: this process's environment) without its HF_ and proxy
    variables, a cache of its own in `hf_home`, Xet transfers off (this hub speaks Git LFS)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("HF_")}
    env.update(CLIENT_SETTINGS, HF_ENDPOINT=endpoint, HF_HOME=str(hf_home))
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(proxy, None)
    return env
