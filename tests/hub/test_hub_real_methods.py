"""The four real methods (tiny configs) as publishable repos: bundled remote code loads in a process
where rs_retrieval cannot be imported and gives bit-identical outputs; staging a run for a push."""

import json
import os

import torch
from hub_server import run_client
from tiny_methods import images, tiny_methods

from rs_retrieval.hub.publish import stage_model
from rs_retrieval.hub.remote_code import bundle

LOAD_ALL = """
import json, torch
from pathlib import Path
from PIL import Image
from transformers import AutoModel, AutoProcessor
root = Path({root!r})
for name in {names!r}:
    case = json.loads((root / name / "case.json").read_text())
    model = AutoModel.from_pretrained(root / name, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(root / name, trust_remote_code=True)
    size = processor.image_processor.size
    pictures = [Image.new("RGB", (size + 8, size + 8), (10 + 60 * i, 200 - 50 * i, 30)) for i in range(2)]
    batch = processor(images=pictures, text=case["texts"], **case["extra"])
    with torch.no_grad():
        out = model(**batch)
    modules = [type(model).__module__, type(processor).__module__, type(processor.tokenizer).__module__]
    torch.save({{"batch": dict(batch), "logits": out.logits_per_image, "modules": modules}}, root / name / "loaded.pt")
"""


def test_real_methods_load_without_the_package_with_identical_outputs(tmp_path):
    references = {}
    for name, (model, processor, texts, extra) in tiny_methods().items():
        model.save_pretrained(tmp_path / name)
        processor.save_pretrained(tmp_path / name)
        auto_map = bundle(tmp_path / name, model, processor)
        assert auto_map["AutoModel"].startswith("modeling_") and ("AutoTokenizer" in auto_map) == (
            name in ("amfmn", "galr")
        )
        (tmp_path / name / "case.json").write_text(json.dumps({"texts": texts, "extra": extra}))
        batch = processor(images=images(processor.image_processor.size), text=texts, **extra)
        with torch.no_grad():
            references[name] = (dict(batch), model(**batch).logits_per_image)
    result = run_client(
        LOAD_ALL.format(root=str(tmp_path), names=list(references)),
        {**os.environ, "HF_HOME": str(tmp_path / "hf")},
        block=("rs_retrieval",),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for name, (batch, logits) in references.items():
        loaded = torch.load(tmp_path / name / "loaded.pt", weights_only=True)
        assert loaded["modules"][0].startswith("transformers_modules.") and loaded["modules"][1].startswith(
            "transformers_modules."
        )
        assert loaded["modules"][2].startswith(
            "transformers_modules." if name in ("amfmn", "galr") else "transformers.models.bert"
        )
        for key, value in batch.items():
            assert torch.equal(loaded["batch"][key], value), (name, key)
        assert torch.equal(loaded["logits"], logits), name


def test_stage_model_collects_run_files_regenerates_code_and_card(tmp_path):
    model, processor, _, _ = tiny_methods()["amfmn"]
    run = tmp_path / "run"
    model.save_pretrained(run / "model")
    processor.save_pretrained(run / "model")
    (run / "model" / "stale_code.py").write_text("raise RuntimeError('old bundle')\n")
    (run / "model" / "README.md").write_text("old card")
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "validation": {
                    "i2t_R@1": 1.0,
                    "i2t_R@5": 2.0,
                    "i2t_R@10": 3.0,
                    "t2i_R@1": 1.0,
                    "t2i_R@5": 2.0,
                    "t2i_R@10": 3.0,
                    "mR": 2.0,
                }
            }
        )
    )
    (run / "training_curves.png").write_bytes(b"png")
    (run / "checkpoints" / "step_10").mkdir(parents=True)
    (run / "checkpoints" / "step_10" / "optimizer.bin").write_bytes(b"state")
    staging = stage_model(run, tmp_path / "staging", dataset_name="rsicd", repo_id="org/amfmn-rsicd")
    files = {p.name for p in staging.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "processor_config.json",
        "vocab.json",
        "metrics.json",
        "training_curves.png",
        "README.md",
        "modeling_amfmn.py",
    } <= files
    assert [name for name in files if name.endswith(".py")] == ["modeling_amfmn.py"]  # one remote-code file
    assert "stale_code.py" not in files and "checkpoints" not in files and "optimizer.bin" not in files
    card = (staging / "README.md").read_text()
    assert "AMFMN-sim | RSICD | 5.21" in card and "| validation (selected checkpoint) | - | 1.00 |" in card
    assert (run / "model" / "README.md").read_text() == "old card"  # the run itself is left as it was
    assert "auto_map" not in json.loads((run / "model" / "config.json").read_text())
    assert json.loads((staging / "config.json").read_text())["auto_map"]["AutoModel"] == "modeling_amfmn.AMFMNModel"
