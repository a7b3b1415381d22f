"""`scripts/benchmark_models.py` entries for MSA and CMPAGL, run end to end with tiny configs."""

import json

from helpers import load_script

from rs_retrieval.models.cmpagl import CMPAGLConfig
from rs_retrieval.models.common.towers import resnet_config
from rs_retrieval.models.msa import MSAConfig

TEXT = dict(
    vocab_size=30,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=16,
)


def test_msa_and_cmpagl_benchmark_entries_and_rerank_costs(tmp_path, monkeypatch, capsys):
    script = load_script("benchmark_models.py", monkeypatch)
    assert isinstance(script.BENCHMARKS["msa"].config(), MSAConfig)
    assert script.BENCHMARKS["cmpagl"].config().itm_k_test == 0
    tiny = {
        "msa": script.BenchmarkEntry(
            lambda: MSAConfig(
                text_config=TEXT,
                vision_config=resnet_config(
                    "resnet50", hidden_sizes=[8, 8, 16, 16], depths=[1, 1, 1, 1], embedding_size=8
                ),
                hidden_size=16,
                mscmat_heads=2,
                image_size=32,
                max_text_len=8,
            ),
            text_inputs=script.padded_text_inputs,
        ),
        "cmpagl": script.BenchmarkEntry(
            lambda: CMPAGLConfig(
                text_config=TEXT,
                vision_config=dict(
                    image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[2, 2], window_size=4
                ),
                fusion_layers=1,
                embed_dim=8,
                gswin_stages=(0,),
                itm_k_test=0,
                max_text_len=8,
            ),
            image_inputs=script.swin_image_inputs,
            text_inputs=script.padded_text_inputs,
        ),
    }
    monkeypatch.setattr(script, "BENCHMARKS", tiny)
    args = [
        "--methods",
        "msa",
        "cmpagl",
        "--num-images",
        "5",
        "--num-captions",
        "9",
        "--image-batch",
        "2",
        "--text-batch",
        "4",
        "--rerank-k",
        "0",
        "2",
        "20",
        "--rerank-sample-pairs",
        "7",
        "--json",
        str(tmp_path / "r.json"),
    ]
    assert script.main(args) == 0
    msa, cmpagl = json.loads((tmp_path / "r.json").read_text())
    assert msa["rerank"] == [] and msa["test_set_s"] >= msa["score_matrix_s"] > 0
    assert [row["k"] for row in cmpagl["rerank"]] == [0, 2, 20]
    assert cmpagl["rerank"][2]["pairs"] == 45 and cmpagl["rerank"][2]["measured_pairs"] == 7  # k >= N, M: every pair
    assert 9 * 2 <= cmpagl["rerank"][1]["pairs"] <= 5 * 2 + 9 * 2 and cmpagl["rerank"][1]["rerank_s"] > 0
    assert "cmpagl fusion re-rank" in capsys.readouterr().out
