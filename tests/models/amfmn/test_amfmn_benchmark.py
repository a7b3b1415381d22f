"""`scripts/benchmark_models.py` runs every registry entry end to end (tiny configs here)."""

import json

from helpers import load_script
from tiny_methods import GRU

from rs_retrieval.models.amfmn import AMFMNConfig
from rs_retrieval.models.galr import GaLRConfig

FAMILY = {**GRU, "vocab_size": 20, "embed_dim": 8}


def test_benchmark_registry_covers_both_methods_and_reports(tmp_path, monkeypatch, capsys):
    script = load_script("benchmark_models.py", monkeypatch)
    assert {"amfmn", "galr"} <= set(script.BENCHMARKS)
    assert (
        isinstance(script.BENCHMARKS["amfmn"].config(), AMFMNConfig)
        and script.BENCHMARKS["amfmn"].config().image_size == 256
    )
    tiny = {
        "amfmn": script.BenchmarkEntry(lambda: AMFMNConfig(att_type="similarity_att", **FAMILY)),
        "galr": script.BenchmarkEntry(
            lambda: GaLRConfig(
                num_nodes=3,
                node_dim=5,
                gcn_dims=[4, 2, 4],
                mca_hidden=8,
                mca_heads=2,
                mca_ff=8,
                dynamic_fusion_dim=4,
                **FAMILY,
            ),
            image_inputs=script.galr_image_inputs,
        ),
    }
    monkeypatch.setattr(script, "BENCHMARKS", tiny)
    args = [
        "--methods",
        "amfmn",
        "galr",
        "--num-images",
        "5",
        "--num-captions",
        "7",
        "--image-batch",
        "2",
        "--text-batch",
        "3",
        "--json",
        str(tmp_path / "r.json"),
    ]
    assert script.main(args) == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert [r["method"] for r in results] == ["amfmn", "galr"]
    for r in results:
        assert r["num_images"] == 5 and r["num_captions"] == 7 and r["images_per_s"] > 0 and r["captions_per_s"] > 0
        assert r["test_set_s"] >= r["score_matrix_s"] > 0
    assert "| amfmn |" in capsys.readouterr().out
