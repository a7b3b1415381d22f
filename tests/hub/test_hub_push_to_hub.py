"""The inherited `push_to_hub` of a model and a processor publishes the repository that
`rs-retrieval push` publishes (weights, processor, remote code, card), in one commit."""

import json
from pathlib import Path

from hub_server import FakeHub, client_env, run_client

PUSH_BOTH_WAYS = """
import sys
sys.path.insert(0, {tests!r})
from tiny_methods import tiny_methods
from rs_retrieval.cli import main
model, processor, _, _ = tiny_methods()["amfmn"]
model.push_to_hub("via-method/amfmn-tiny", processor=processor)
model.save_pretrained({folder!r})
processor.save_pretrained({folder!r})
main(["push", {folder!r}, "via-cli/amfmn-tiny"])
model.push_to_hub("split/amfmn-tiny")          # the usual two calls of a transformers user
processor.push_to_hub("split/amfmn-tiny")
"""


LOAD_REMOTE = """
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor
model = AutoModel.from_pretrained("via-method/amfmn-tiny", trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained("via-method/amfmn-tiny", trust_remote_code=True)
batch = processor(images=[Image.new("RGB", (70, 70), (90, 150, 30))], text=["ship port", "green field road"])
with torch.no_grad():
    logits = model(**batch).logits_per_image
model.save_pretrained({out!r})          # a remote-code model saves its one code file again
processor.save_pretrained({out!r})
again = AutoModel.from_pretrained({out!r}, trust_remote_code=True).eval()
with torch.no_grad():
    print(torch.equal(again(**AutoProcessor.from_pretrained({out!r}, trust_remote_code=True)(
        images=[Image.new("RGB", (70, 70), (90, 150, 30))], text=["ship port", "green field road"])).logits_per_image, logits),
        type(again).__module__.endswith("modeling_amfmn"))
"""


def test_model_push_to_hub_equals_cli_push_and_processor_push_keeps_the_model(tmp_path):
    with FakeHub() as hub:
        env = client_env(hub.endpoint, tmp_path / "hf")
        result = run_client(
            PUSH_BOTH_WAYS.format(tests=str(Path(__file__).parents[1]), folder=str(tmp_path / "saved")), env
        )
        assert result.returncode == 0, result.stderr[-4000:]
        method, cli = hub.repo("via-method/amfmn-tiny").resolve("main"), hub.repo("via-cli/amfmn-tiny").resolve("main")
        assert len(hub.requests_to("POST", "/api/models/via-method/amfmn-tiny/commit/")) == 1
        assert set(method.files) == set(cli.files)
        assert {"model.safetensors", "processor_config.json", "README.md", "modeling_amfmn.py"} <= set(method.files)
        for path in method.files:
            pushed = hub.file_bytes("via-method/amfmn-tiny", path)
            expected = hub.file_bytes("via-cli/amfmn-tiny", path)
            if path == "README.md":
                expected = expected.replace(b"via-cli/", b"via-method/")
            assert pushed == expected, path

        split = hub.repo("split/amfmn-tiny").resolve("main")
        assert len(hub.requests_to("POST", "/api/models/split/amfmn-tiny/commit/")) == 2
        # the processor commit added its files (code: its own one-file bundle) and kept the model's
        assert set(split.files) == set(method.files) | {"processing_amfmn.py"}
        assert hub.file_bytes("split/amfmn-tiny", "model.safetensors") == hub.file_bytes(
            "via-method/amfmn-tiny", "model.safetensors"
        )
        auto_map = json.loads(hub.file_bytes("via-method/amfmn-tiny", "config.json"))["auto_map"]
        assert (
            auto_map["AutoModelForZeroShotImageClassification"] == auto_map["AutoModel"] == "modeling_amfmn.AMFMNModel"
        )
        assert b'"AutoProcessor"' in hub.file_bytes("split/amfmn-tiny", "processor_config.json")
        loaded = run_client(
            LOAD_REMOTE.format(out=str(tmp_path / "resaved")),
            client_env(hub.endpoint, tmp_path / "hf_load"),
            block=("rs_retrieval",),
        )
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    assert (
        loaded.stderr.count("A new version of the following files was downloaded") == 1
    )  # one file to review, not one per module
    assert "- modeling_amfmn.py\n." in loaded.stderr
    assert loaded.stdout.split() == ["True", "True"]
