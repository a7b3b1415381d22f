"""The fake Hub itself, over plain HTTP (urllib): the endpoint shapes the HF clients rely on."""

import base64
import hashlib
import json
import urllib.error
import urllib.request

import pytest
from hub_server import FakeHub, git_blob_oid, validate_card_yaml

WEIGHTS = bytes(range(256)) * 40  # binary: goes through LFS


def call(hub, method, path, body=None, headers=None):
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(hub.endpoint + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def ndjson(*lines):
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


@pytest.fixture
def hub():
    with FakeHub() as hub:
        status, _, body = call(hub, "POST", "/api/repos/create", {"name": "x", "organization": "org", "type": "model"})
        assert status == 200 and json.loads(body)["url"] == f"{hub.endpoint}/org/x"
        yield hub


def upload_lfs(hub, data):
    oid = hashlib.sha256(data).hexdigest()
    status, _, body = call(
        hub,
        "POST",
        "/org/x.git/info/lfs/objects/batch",
        {"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]},
    )
    assert status == 200
    action = json.loads(body)["objects"][0]["actions"]["upload"]
    assert call(hub, "PUT", action["href"].removeprefix(hub.endpoint), data)[0] == 200
    return oid


def commit(hub, *ops, parent=None):
    header = {"summary": "test", "description": ""} | ({"parentCommit": parent} if parent else {})
    return call(
        hub,
        "POST",
        "/api/models/org/x/commit/main",
        ndjson({"key": "header", "value": header}, *ops),
        {"Content-Type": "application/x-ndjson"},
    )


def test_create_twice_conflicts_and_unknown_repo_is_repo_not_found(hub):
    assert call(hub, "POST", "/api/repos/create", {"name": "x", "organization": "org"})[0] == 409
    status, headers, _ = call(hub, "GET", "/api/models/org/missing")
    assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"


def test_preupload_sends_binaries_and_lfs_patterns_to_lfs(hub):
    files = [
        {"path": "config.json", "sample": base64.b64encode(b'{"a": 1}').decode(), "size": 8},
        {"path": "model.safetensors", "sample": base64.b64encode(b"{}").decode(), "size": 2},
        {"path": "blob.dat", "sample": base64.b64encode(b"a\0b").decode(), "size": 3},
    ]
    status, _, body = call(hub, "POST", "/api/models/org/x/preupload/main", {"files": files})
    modes = {f["path"]: f["uploadMode"] for f in json.loads(body)["files"]}
    assert status == 200 and modes == {"config.json": "regular", "model.safetensors": "lfs", "blob.dat": "lfs"}


def test_commit_then_resolve_tree_and_paths_info(hub):
    oid = upload_lfs(hub, WEIGHTS)
    status, _, body = commit(
        hub,
        {
            "key": "file",
            "value": {"path": "config.json", "content": base64.b64encode(b'{"a": 1}').decode(), "encoding": "base64"},
        },
        {
            "key": "lfsFile",
            "value": {"path": "sub/model.safetensors", "algo": "sha256", "oid": oid, "size": len(WEIGHTS)},
        },
    )
    assert status == 200
    head = json.loads(body)["commitOid"]
    assert hub.branch_head("org/x") == head

    status, headers, data = call(
        hub, "GET", "/org/x/resolve/main/sub/model.safetensors", headers={"Range": "bytes=10-19"}
    )
    assert (status, data) == (206, WEIGHTS[10:20])
    assert headers["Content-Range"] == f"bytes 10-19/{len(WEIGHTS)}" and headers["X-Repo-Commit"] == head
    assert headers["ETag"] == f'"{oid}"'
    status, headers, data = call(hub, "HEAD", f"/org/x/resolve/{head}/config.json")
    assert status == 200 and data == b"" and headers["Content-Length"] == "8"
    etag = git_blob_oid(b'{"a": 1}')
    assert headers["ETag"] == f'"{etag}"'

    status, _, body = call(hub, "GET", "/api/models/org/x/tree/main")
    assert [(e["type"], e["path"]) for e in json.loads(body)] == [
        ("file", ".gitattributes"),
        ("file", "config.json"),
        ("directory", "sub"),
    ]
    status, _, body = call(hub, "GET", "/api/models/org/x/tree/main/sub?recursive=true")
    (entry,) = json.loads(body)
    assert entry["lfs"] == {"oid": oid, "size": len(WEIGHTS), "pointerSize": entry["lfs"]["pointerSize"]}
    status, _, body = call(
        hub,
        "POST",
        "/api/models/org/x/paths-info/main",
        b"paths=sub&paths=nope&paths=config.json&expand=True",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    infos = json.loads(body)
    assert [(e["type"], e["path"]) for e in infos] == [("directory", "sub"), ("file", "config.json")]
    assert infos[1]["lastCommit"]["id"] == head

    status, _, body = call(hub, "GET", "/api/models/org/x/revision/main?blobs=true")
    info = json.loads(body)
    assert info["sha"] == head and {s["rfilename"] for s in info["siblings"]} == {
        ".gitattributes",
        "config.json",
        "sub/model.safetensors",
    }


def test_errors_carry_hub_error_codes(hub):
    status, headers, _ = call(hub, "HEAD", "/org/x/resolve/main/absent.txt")
    assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound")
    assert headers["X-Repo-Commit"] == hub.branch_head("org/x")
    status, headers, _ = call(hub, "GET", "/org/x/resolve/nobranch/config.json")
    assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound")


def test_commit_naming_a_missing_lfs_object_changes_nothing(hub):
    before = hub.branch_head("org/x")
    status, _, body = commit(
        hub,
        {
            "key": "file",
            "value": {"path": "config.json", "content": base64.b64encode(b"{}").decode(), "encoding": "base64"},
        },
        {"key": "lfsFile", "value": {"path": "model.safetensors", "algo": "sha256", "oid": "0" * 64, "size": 10}},
    )
    assert status == 422 and "never uploaded" in json.loads(body)["error"]
    assert hub.branch_head("org/x") == before and set(hub.repo("org/x").resolve("main").files) == {".gitattributes"}
    assert commit(hub, {"key": "deletedFile", "value": {"path": ".gitattributes"}}, parent="f" * 40)[0] == 412


def test_lfs_put_is_checked_against_its_oid(hub):
    oid = hashlib.sha256(b"right").hexdigest()
    assert call(hub, "PUT", f"/__lfs/{oid}?size=5", b"wrong")[0] == 400
    assert oid not in hub.lfs_objects


def test_killed_hub_refuses_connections(hub):
    endpoint = hub.endpoint
    hub.kill()
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(endpoint + "/api/whoami-v2", timeout=5)
    assert isinstance(info.value.reason, ConnectionRefusedError)


def test_card_yaml_validation():
    good = (
        "---\nlicense: apache-2.0\nmodel-index:\n- name: m\n  results:\n  - task: {type: t}\n "
        "   dataset: {type: d, name: D}\n    metrics: [{type: mR, value: 1.5}]\n---\n# card"
    )
    assert validate_card_yaml(good) == []
    assert validate_card_yaml("---\nlicense: other\n---\n") == ['"license_name" is required when "license" is "other"']
    assert validate_card_yaml("---\nlicense: made-up\n---\n") == [
        "\"license\" must be a known licence id, got 'made-up'"
    ]
    assert "needs a type and a numeric value" in validate_card_yaml(good.replace("value: 1.5", "value: high"))[0]


SERVE_LOCAL_CLIENT = """
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
api.create_repo("me/tried", repo_type="model")
api.upload_file(path_or_fileobj=b"weights", path_in_repo="w.bin", repo_id="me/tried", commit_message="try")
print(open(hf_hub_download("me/tried", "w.bin"), "rb").read().decode())
"""


def test_serve_local_command_prints_the_exports_a_client_needs(tmp_path):
    """`rs-retrieval hub serve-local`: the printed exports are all an HF client needs; Ctrl-C stops it."""
    import os
    import re
    import signal
    import subprocess
    import sys

    from hub_server import run_client

    command = [
        sys.executable,
        "-c",
        "from rs_retrieval.cli import main; raise SystemExit(main(['hub', 'serve-local', '--port', '0']))",
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        while not lines or not lines[-1].startswith("Stop with Ctrl-C"):
            line = server.stdout.readline()
            assert line, "serve-local exited early:\n" + "".join(lines)
            lines.append(line)
        assert "not for hosting" in lines[0] and re.match(r"Local test Hub on http://127\.0\.0\.1:\d+:", lines[0])
        exports = dict(
            re.fullmatch(r"export (\w+)=(.*)\n", line).groups() for line in lines if line.startswith("export ")
        )
        env = (
            {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "PYTHONPATH"}
            | exports
            | {"HF_HOME": str(tmp_path)}
        )
        result = run_client(SERVE_LOCAL_CLIENT, env, block=("rs_retrieval",))
        assert result.returncode == 0 and result.stdout.strip() == "weights", result.stderr[-3000:]
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
