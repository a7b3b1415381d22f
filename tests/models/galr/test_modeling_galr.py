import numpy as np
import pytest
import torch
from PIL import Image
from tiny_methods import WORDS, tiny_config
from transformers import AutoProcessor

import rs_retrieval.models  # noqa: F401  (registers the Auto classes)
from rs_retrieval.models.amfmn_family.tokenization_word import RSWordTokenizer
from rs_retrieval.models.common.processing import RSImageProcessor
from rs_retrieval.models.galr import (
    GaLRConfig,
    GaLRModel,
    GaLRProcessor,
    local_feature_key,
    read_official_local_features,
    save_local_features,
)
from rs_retrieval.models.galr.local_graph import LocalGraphError
from rs_retrieval.models.galr.modeling_galr import GaLRLayerNorm, l2norm

VOCAB = WORDS
OBJECTS = [
    [
        {"category": "ship", "color": "red", "bbox": [0.1, 0.1, 0.3, 0.2]},
        {"category": "car", "color": "white", "bbox": [0.5, 0.4, 0.9, 0.9]},
    ],
    [],
    [{"category": "tree", "color": "red", "bbox": [0.0, 0.0, 1.0, 1.0]}],
]


def processor(**kwargs):
    return GaLRProcessor(RSImageProcessor(size=64), RSWordTokenizer(vocab=VOCAB), **kwargs)


def tiny_model(**overrides):
    torch.manual_seed(0)
    return GaLRModel(tiny_config("galr", **overrides)).eval()


def image_inputs(batch=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return dict(
        pixel_values=torch.randn(batch, 3, 64, 64, generator=generator),
        local_features=torch.rand(batch, 4, 12, generator=generator),
        local_adjacency=torch.rand(batch, 4, 4, generator=generator),
    )


def test_default_config_keeps_reference_numbers():
    config = GaLRConfig()
    assert (config.num_nodes, config.node_dim, config.gcn_dims) == (20, 20, [20, 10, 20])
    assert (config.mca_hidden, config.mca_heads, config.mca_ff, config.mca_dropout) == (512, 8, 1024, 0.1)
    assert (config.dynamic_fusion_dim, config.dynamic_fusion_dropout, config.paper_fusion_fix) == (512, 0.2, False)
    settings = GaLRProcessor.image_settings(config)
    assert (settings["train_resize"], settings["train_rotation_degrees"], config.margin, config.image_size) == (
        278,
        90.0,
        0.2,
        256,
    )
    assert not hasattr(config, "att_type")
    with pytest.raises(ValueError, match="mca_hidden"):
        GaLRConfig(mca_hidden=256)
    with pytest.raises(ValueError, match="rerank"):
        GaLRConfig(rerank={"K1": 30})


def test_shapes_and_cosine_scores():
    model = tiny_model()
    with torch.no_grad():
        out = model(input_ids=torch.randint(1, 12, (5, 6)), **image_inputs())
        assert out.logits_per_image.shape == (3, 5) and out.image_embeds.shape == (3, 8)
        expected = l2norm(out.image_embeds) @ l2norm(out.text_embeds).t()
        torch.testing.assert_close(out.logits_per_image, expected)
        assert out.logits_per_image.abs().max() <= 1 + 1e-6


def test_gcn_layers_and_node_major_flatten():
    model = tiny_model()
    gcn = model.local_feature
    x, adjacency = torch.rand(2, 4, 12), torch.rand(2, 4, 4)
    h = x
    for weight in (gcn.fc1.weight, gcn.fc2.weight, gcn.fc3.weight):
        h = torch.relu(torch.einsum("bij,bjd->bid", adjacency, h) @ weight.t())
    assert h.shape == (2, 4, 5)
    flat = torch.stack([torch.cat([h[b, node] for node in range(4)]) for b in range(2)])  # node 0 first
    expected = gcn.out(flat)
    with torch.no_grad():
        torch.testing.assert_close(gcn(x, adjacency), expected / (expected.norm(dim=-1, keepdim=True) + 1e-8))


def test_custom_layer_norm_uses_unbiased_std_and_eps_outside_the_root():
    norm = GaLRLayerNorm(5)
    with torch.no_grad():
        norm.a_2.copy_(torch.arange(1.0, 6.0))
        norm.b_2.fill_(0.5)
    x = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0]])
    mean = x.mean()
    std = ((x - mean) ** 2).sum().div(4).sqrt()  # N - 1
    torch.testing.assert_close(norm(x), torch.arange(1.0, 6.0) * (x - mean) / (std + 1e-6) + 0.5)
    assert not torch.allclose(norm(x), torch.nn.functional.layer_norm(x, (5,), norm.a_2, norm.b_2, eps=1e-6))


def _randomise(model, names):
    with torch.no_grad():
        for name, param in model.named_parameters():
            if any(part in name for part in names):
                param.copy_(torch.randn_like(param) * 3)


def test_bug_faithful_fusion_weights_and_single_token_query_key_do_not_change_scores():
    model = tiny_model()
    ids = torch.randint(1, 12, (4, 6))
    with torch.no_grad():
        before = model(input_ids=ids, **image_inputs()).logits_per_image
        _randomise(model, ["fusion.dynamic_weight"])
        after_weights = model(input_ids=ids, **image_inputs()).logits_per_image
        _randomise(model, ["linear_q", "linear_k"])
        after_qk = model(input_ids=ids, **image_inputs()).logits_per_image
        _randomise(model, ["linear_v"])
        after_v = model(input_ids=ids, **image_inputs()).logits_per_image
    torch.testing.assert_close(after_weights, before, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(after_qk, before, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(after_v, before, atol=1e-3)  # the check can fail


def test_paper_fusion_fix_makes_the_dynamic_weights_matter():
    model = tiny_model(paper_fusion_fix=True)
    ids = torch.randint(1, 12, (4, 6))
    with torch.no_grad():
        before = model(input_ids=ids, **image_inputs()).logits_per_image
        _randomise(model, ["fusion.dynamic_weight"])
        assert not torch.allclose(model(input_ids=ids, **image_inputs()).logits_per_image, before, atol=1e-4)


def test_missing_or_misshaped_local_inputs_raise():
    model = tiny_model()
    pixels = image_inputs()["pixel_values"]
    with pytest.raises(ValueError, match="local_features.*load_local_features"):
        model.get_image_features(pixels)
    with pytest.raises(ValueError, match=r"local_adjacency must be \[3, 4, 4\]"):
        model.get_image_features(pixels, torch.rand(3, 4, 12), torch.rand(3, 4, 5))


def test_processor_builds_object_graphs():
    graphs = processor(
        num_nodes=4,
        node_dim=12,
        object_categories=["ship", "car", "tree"],
        object_colors=["red", "white"],
        adjacency_sigma=0.5,
    )
    features, adjacency = graphs.graph_from_objects(OBJECTS[0])
    # largest box first: the car (0.4 x 0.5 = 0.2), then the ship (0.2 x 0.1 = 0.02)
    np.testing.assert_allclose(features[0], [0, 1, 0, 0, 1, 0.7, 0.65, 0.4, 0.5, 0.2, 0, 0], atol=1e-6)
    np.testing.assert_allclose(features[1], [1, 0, 0, 1, 0, 0.2, 0.15, 0.2, 0.1, 0.02, 0, 0], atol=1e-6)
    assert not features[2:].any() and not adjacency[2:].any() and not adjacency[:, 2:].any()
    off = np.exp(-(0.5**2 + 0.5**2) / (2 * 0.25))
    np.testing.assert_allclose(adjacency[:2, :2], np.array([[1, off], [off, 1]]) / (1 + off), atol=1e-6)
    empty_features, empty_adjacency = graphs.graph_from_objects([])
    assert not empty_features.any() and not empty_adjacency.any()
    with pytest.raises(ValueError, match="object_colors"):
        graphs.graph_from_objects([{"category": "ship", "color": "green", "bbox": [0, 0, 1, 1]}])
    with pytest.raises(ValueError, match="normalised"):
        graphs.graph_from_objects([{"category": "ship", "color": "red", "bbox": [0.5, 0, 0.2, 1]}])
    with pytest.raises(ValueError, match="node_dim >= 17"):
        processor(num_nodes=4, node_dim=12, object_categories=list("abcdefgh"), object_colors=list("abcd"))
    assert GaLRProcessor.object_vocabulary(OBJECTS) == (["car", "ship", "tree"], ["red", "white"])


def test_official_local_feature_files_are_read_only_on_request(tmp_path):
    rng = np.random.default_rng(0)
    reps = {"airport_1.txt": rng.random((4, 12)), "beach_2.txt": rng.random((4, 12))}
    adjs = {k: rng.random((4, 4)) for k in reps}
    np.save(tmp_path / "rsitmd_local.npy", {"adj_matrix": adjs, "local_rep": reps}, allow_pickle=True)
    tables = processor(num_nodes=4, node_dim=12)
    with pytest.raises(ValueError, match="allow_pickle"):
        tables.load_local_features(tmp_path / "rsitmd_local.npy")
    assert tables.load_local_features(tmp_path / "rsitmd_local.npy", allow_pickle=True) == 2
    assert (
        local_feature_key("beach_2.jpg") == "beach_2.txt" and local_feature_key("a/airport_1.tif") == "airport_1.txt"
    )
    batch = tables.image_inputs(
        {"image": [Image.new("RGB", (64, 64))] * 2, "filename": ["beach_2.tif", "airport_1.jpg"]}
    )
    features, adjacency = batch["local_features"].numpy(), batch["local_adjacency"].numpy()
    np.testing.assert_allclose(features[0], reps["beach_2.txt"], rtol=1e-6)
    np.testing.assert_allclose(adjacency[1], adjs["airport_1.txt"], rtol=1e-6)
    with pytest.raises(KeyError, match="desert_3"):
        tables.image_inputs({"image": [Image.new("RGB", (64, 64))], "filename": ["desert_3.jpg"]})
    save_local_features(read_official_local_features(tmp_path / "rsitmd_local.npy"), tmp_path / "local.safetensors")
    other = processor(num_nodes=4, node_dim=12)
    assert other.load_local_features(tmp_path / "local.safetensors") == 2
    again = other.image_inputs({"image": [Image.new("RGB", (64, 64))], "filename": ["beach_2.tif"]})
    np.testing.assert_array_equal(again["local_features"].numpy(), features[:1])
    with pytest.raises(ValueError, match=r"expects \(20, 20\)"):
        processor().load_local_features(tmp_path / "local.safetensors")
    from_recipe = GaLRProcessor.from_config(
        tiny_model(num_nodes=4, node_dim=12).config, VOCAB, local_features=tmp_path / "local.safetensors"
    )
    np.testing.assert_array_equal(
        from_recipe.image_inputs({"image": [Image.new("RGB", (64, 64))], "filename": ["beach_2.tif"]})[
            "local_features"
        ].numpy(),
        features[:1],
    )
    np.save(tmp_path / "bad.npy", {"local_rep": reps}, allow_pickle=True)
    with pytest.raises(ValueError, match="adj_matrix"):
        read_official_local_features(tmp_path / "bad.npy")


def test_processor_saves_the_object_layout_and_needs_a_graph(tmp_path):
    # (save/load and Auto round trips of every method: tests/models/test_model_contract.py)
    model = tiny_model()
    processor = GaLRProcessor.from_config(
        model.config, VOCAB, object_categories=["ship", "car", "tree"], object_colors=["red", "white"]
    )
    assert processor.image_processor.train_rotation_degrees == 90.0 and processor.num_nodes == 4
    images = [
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (80, 80, 3), dtype=np.uint8)) for i in range(3)
    ]
    batch = processor(images=images, text=["The ship is in the port.", "green trees"], objects=OBJECTS)
    assert batch["local_features"].shape == (3, 4, 12) and batch["local_adjacency"].shape == (3, 4, 4)
    model.config.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reprocessor = AutoProcessor.from_pretrained(tmp_path)
    assert reprocessor.object_categories == ["ship", "car", "tree"] and reprocessor.node_dim == 12
    with pytest.raises(LocalGraphError, match="objects"):  # no annotations: the default detector, offline here
        reprocessor(images=images)


def test_full_size_default_model_runs_one_batch_with_reference_parameter_count():
    model = GaLRModel(GaLRConfig()).eval()
    # spec: 46,892,998 including torchvision's unused fc (513,000)
    assert sum(p.numel() for p in model.parameters()) == 46_892_998 - 513_000
    with torch.no_grad():
        out = model(
            torch.randn(2, 3, 256, 256),
            torch.randint(1, 1350, (3, 9)),
            local_features=torch.rand(2, 20, 20),
            local_adjacency=torch.rand(2, 20, 20),
        )
    assert out.logits_per_image.shape == (2, 3) and torch.isfinite(out.logits_per_image).all()
