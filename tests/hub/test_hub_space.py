"""`rs-retrieval space build` + `push --type space`: the Space goes to the test Hub, comes back in a
process without rs_retrieval, its pushed requirements.txt installs the wheel from the Hub into a
fresh venv, and its app.py serves a query in Chromium.

The venv reuses the test environment's packages through a .pth file (nothing is downloaded), so
`pip install --no-index -r requirements.txt` checks that every pin is satisfiable offline and
fetches only the wheel, from the test Hub URL the push wrote. The wheel is the session's
(`dists` in conftest.py, shared with test_wheel.py).
"""

import hashlib
import os
import site
import subprocess
import venv
from pathlib import Path

import pytest
import yaml
from app_fixtures import save_tiny_run, synth_images
from helpers import load_script
from hub_server import FakeHub, client_env, run_client

bench = load_script("benchmark_serve.py")
REPO = "org/rs-demo"
DOWNLOAD = """
from huggingface_hub import snapshot_download
print(snapshot_download({repo!r}, repo_type="space", local_dir={out!r}))
"""


def fresh_venv(folder: Path) -> Path:
    """A venv whose site-packages also sees this environment's packages (not their .pth hooks, so
    not the editable rs_retrieval)."""
    venv.create(folder, with_pip=False)
    site_packages = next((folder / "lib").glob("python*/site-packages"))
    (site_packages / "_test_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return folder / "bin" / "python"


def test_bad_space_inputs_are_one_line_errors(tmp_path, capsys):
    from rs_retrieval.cli import main

    (tmp_path / "images").mkdir()
    (tmp_path / "fake.whl").write_bytes(b"")
    base = ["space", "build", "--model", "org/model", "--out", str(tmp_path / "out")]
    assert main([*base, "--images", str(tmp_path / "images"), "--wheel", str(tmp_path / "nope.whl")]) == 2
    assert "is not an rs_retrieval wheel" in capsys.readouterr().err
    wheel = tmp_path / "rs_retrieval-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert main([*base, "--images", str(tmp_path / "images"), "--wheel", str(wheel)]) == 2
    assert "error: no images" in capsys.readouterr().err
    assert main(["push", str(tmp_path / "images"), "org/x", "--type", "space"]) == 2
    assert "is not a Space folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.browser
def test_space_goes_to_the_hub_installs_from_its_wheel_and_serves_a_query(dists, tmp_path):
    chromium = bench.find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (apt-get install -y chromium, or set RS_RETRIEVAL_CHROMIUM)")
    from playwright.sync_api import expect, sync_playwright

    from rs_retrieval.cli import main

    wheel = dists["wheel"]
    model_dir, images = save_tiny_run(tmp_path / "run"), synth_images(tmp_path / "synth", num_images=6)
    space = tmp_path / "space"
    assert (
        main(
            [
                "space",
                "build",
                "--model",
                str(model_dir),
                "--images",
                str(images),
                "--out",
                str(space),
                "--wheel",
                str(wheel),
            ]
        )
        == 0
    )
    card = (space / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert (meta["sdk"], meta["app_file"], meta["title"]) == ("gradio", "app.py", "rs_retrieval demo: run")
    requirements = (space / "requirements.txt").read_text().splitlines()
    assert requirements[0] == f"./wheels/{wheel.name}[web]" and "torch==2.13.0" in requirements
    assert all("==" in line for line in requirements[1:]) and any(line.startswith("gradio==") for line in requirements)
    assert "rs_retrieval.app.launch import serve_space" in (space / "app.py").read_text()
    assert sorted(p.name for p in (space / "images").iterdir()) == sorted(
        p.name for p in images.iterdir() if p.suffix == ".png"
    )

    with FakeHub() as hub:
        env = client_env(hub.endpoint, tmp_path / "hf")
        pushed = run_client(
            f"from rs_retrieval.cli import main\nraise SystemExit(main(['push', {str(space)!r}, {REPO!r}]))", env
        )
        assert pushed.returncode == 0 and "pushed space" in pushed.stdout, pushed.stderr[-3000:]
        plain_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        cloned = tmp_path / "cloned"
        downloaded = run_client(DOWNLOAD.format(repo=REPO, out=str(cloned)), plain_env, block=("rs_retrieval",))
        assert downloaded.returncode == 0, downloaded.stderr[-3000:]
        pushed_requirements = (cloned / "requirements.txt").read_text().splitlines()
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        url = f"{hub.endpoint}/spaces/{REPO}/resolve/main/wheels/{wheel.name}#sha256={digest}"
        assert pushed_requirements == [f"rs-retrieval[web] @ {url}", *requirements[1:]]
        assert (cloned / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()
        python = fresh_venv(tmp_path / "venv")
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-index", "-r", "requirements.txt"],
            cwd=cloned,
            env=plain_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    where = subprocess.run(
        [str(python), "-c", "import rs_retrieval; print(rs_retrieval.__file__)"],
        env=plain_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv")  # the wheel from the Hub, not the checkout

    port = bench.free_port()
    app_env = {
        **plain_env,
        "GRADIO_SERVER_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log = tmp_path / "app.log"
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(
            [str(python), "app.py"], cwd=cloned, env=app_env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        try:
            bench._wait_for_http(url, server, 180)
        except (RuntimeError, TimeoutError) as err:
            raise AssertionError(f"{err}; app.py said:\n{log.read_text()[-4000:]}") from err
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=bench.CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            expect.set_options(timeout=60_000)
            page.goto(url)
            expect(page.locator("#corpus-status")).to_contain_text("Ready: 6 images searchable")
            page.locator("#query textarea").fill("two white planes beside a grey runway")
            page.locator("#search-button").click()
            expect(page.locator("#search-message")).to_contain_text("hits for “two white planes beside a grey runway”")
            assert page.locator("#gallery button.thumbnail-item").count() > 0
            page.screenshot(path=tmp_path / "space_query.png", full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert os.path.getsize(tmp_path / "space_query.png") > 0
