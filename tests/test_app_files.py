"""What `rs-retrieval serve` hands out over HTTP: the hits it shows, nothing else from disk.

One real server (the CLI in a subprocess, its temp folder redirected to the test's) over an image
folder that also holds a `.env`, a text file in a sub-folder and a symlinked image whose target
sits beside a private key. Every way of naming those files through Gradio's file route is refused;
a search's hits are served byte-identical; uploads are gone once the server stops.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from app_fixtures import save_tiny_amfmn, synth_images
from helpers import load_script

pytest.importorskip("gradio")
bench = load_script("benchmark_serve.py")
SECRET = b"AWS_SECRET_ACCESS_KEY=do-not-serve"
PREFIXES = ("/gradio_api/file=", "/file=")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served_files")
    model_dir = save_tiny_amfmn(root / "model")
    images = root / "images"
    shutil.copytree(synth_images(root / "synth", num_images=4), images)
    (images / ".env").write_bytes(SECRET)
    (images / "notes").mkdir()
    (images / "notes" / "todo.txt").write_bytes(SECRET)
    outside = root / "home" / ".ssh"  # a symlinked image's target lives beside a private key
    outside.mkdir(parents=True)
    shutil.copyfile(next(images.glob("*.png")), outside / "target.png")
    (outside / "id_rsa").write_bytes(SECRET)
    (images / "linked.png").symlink_to(outside / "target.png")
    temp = root / "tmp"
    temp.mkdir()
    port = bench.free_port()
    command = [
        sys.executable,
        "-m",
        "rs_retrieval.cli",
        "serve",
        "--model",
        str(model_dir),
        "--images",
        str(images),
        "--port",
        str(port),
        "--cache-dir",
        str(root / "cache"),
        "--batch-size",
        "8",
    ]
    env = {
        **os.environ,
        "TMPDIR": str(temp),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    env.pop(
        "GRADIO_TEMP_DIR", None
    )  # set in this process by an earlier in-process app test: the server must make its own
    process = subprocess.Popen(command, cwd=images, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        bench._wait_for_http(f"http://127.0.0.1:{port}/", process, timeout=120)
        yield type(
            "Server",
            (),
            dict(
                url=f"http://127.0.0.1:{port}", root=root, images=images, outside=outside, temp=temp, process=process
            ),
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def forms_of(path: Path, cwd: Path) -> list[str]:
    """Ways to name `path` in a URL: absolute, `../` detours, relative to the server's cwd, URL-encoded."""
    absolute = str(path)
    detour = str(cwd / ".." / cwd.name / os.path.relpath(path, cwd))
    relative = os.path.relpath(path, cwd)
    forms = [absolute, detour, relative, "./" + relative]
    forms += [urllib.parse.quote(form, safe="") for form in forms]
    forms.append(absolute.replace("/", "%2F").replace(".", "%2e"))
    return forms


@pytest.mark.parametrize("name", [".env", "notes/todo.txt", "id_rsa", "target.png", "linked.png", "images"])
def test_nothing_from_disk_is_served(server, name):
    path = {
        ".env": server.images / ".env",
        "notes/todo.txt": server.images / "notes" / "todo.txt",
        "id_rsa": server.outside / "id_rsa",
        "target.png": server.outside / "target.png",
        "linked.png": server.images / "linked.png",
        "images": server.images,
    }[name]
    for prefix in PREFIXES:
        for form in forms_of(path, server.images):
            status, body = get(server.url + prefix + form)
            assert status in (403, 404), f"{prefix}{form} answered {status}"
            assert SECRET not in body


def search(server, query: str, k: int) -> list[dict]:
    from gradio_client import Client

    client = Client(server.url, verbose=False, download_files=False)
    deadline = time.monotonic() + 120
    while True:
        _, gallery = client.predict(query, k, api_name="/search")
        if gallery or time.monotonic() > deadline:
            return gallery
        time.sleep(0.5)  # the folder is still being encoded


def test_search_hits_are_served_as_copies_of_the_indexed_files(server):
    hits = search(server, "two white planes are parked beside a grey runway", 5)
    assert len(hits) == 5  # 4 images + the symlinked one
    originals = {p.name: p.read_bytes() for p in server.images.glob("*.png")}
    for hit in hits:
        url = hit["image"]["url"]
        status, body = get(url if url.startswith("http") else server.url + url)
        name = hit["caption"].split()[-1]
        assert status == 200 and body == originals[name]


def test_uploads_are_removed_when_the_server_stops(server):
    import httpx  # gradio's own HTTP client

    upload = server.root / "upload.png"
    shutil.copyfile(next(server.images.glob("*.png")), upload)
    with open(upload, "rb") as handle:
        response = httpx.post(server.url + "/gradio_api/upload", files={"files": handle}, timeout=30)
    stored = Path(response.json()[0])
    assert stored.is_file() and stored.is_relative_to(server.temp.resolve())
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(60) != 0
    assert not stored.exists()
    assert not list(server.temp.glob("rs_retrieval_serve_*")), list(server.temp.iterdir())
