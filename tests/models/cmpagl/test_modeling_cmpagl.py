import functools

import pytest
import tiny_methods
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_methods import BERT, WORDPIECE, token_batch
from transformers import AutoConfig, AutoProcessor, BertConfig, BertModel, SwinConfig, SwinModel

import rs_retrieval.models  # noqa: F401  (registers the Auto classes)
from rs_retrieval.models.cmpagl import (
    CMPAGLConfig,
    CMPAGLModel,
    CMPAGLProcessor,
    GlobalLocalCrossAttention,
    GswinVisionEncoder,
    improved_triplet_loss,
    itc_loss,
    merge_windows,
    partition_windows,
    sample_itm_negatives,
)

VOCAB, TEXT, VISION = WORDPIECE, BERT, tiny_methods.TINY_CONFIGS["cmpagl"]["vision_config"]


METHOD = "cmpagl"  # the `model` fixture (tests/models/conftest.py) builds its tiny model
tiny_config = functools.partial(tiny_methods.tiny_config, METHOD)
batch = functools.partial(token_batch, num_images=4, num_texts=5, length=6, padded_from=4)


def test_config_defaults_round_trip_and_validation(tmp_path):
    default = CMPAGLConfig()
    assert default.is_reconstruction and isinstance(default.vision_config, SwinConfig)
    assert (
        default.vision_config.embed_dim,
        list(default.vision_config.depths),
        default.vision_config.window_size,
    ) == (96, [2, 2, 6, 2], 7)
    assert default.text_config.num_hidden_layers == 6 and default.fusion_layers == 6 and default.vision_width == 768
    assert (
        default.embed_dim,
        default.temp_init,
        default.itm_k_test,
        default.triplet_margin,
        default.max_text_len,
    ) == (256, 0.07, 128, 0.2, 40)
    assert default.triplet_reduction == "mean" and default.loss_weights == [1.0, 1.0, 1.0]
    config = tiny_config(intra_class_weight=0.5, global_local_combine="sequential")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is CMPAGLConfig and isinstance(loaded.text_config, BertConfig)
    expected, got = config.to_dict(), loaded.to_dict()
    expected.pop("_name_or_path", None), got.pop("_name_or_path", None)
    assert got == expected
    for bad, message in (
        (dict(gswin_stages=(2,)), "gswin_stages"),
        (dict(global_window_pool="sum"), "global_window_pool"),
        (dict(itm_k_test=-1), "itm_k_test"),
    ):
        with pytest.raises(ValueError, match=message):
            tiny_config(**bad)


@pytest.mark.parametrize("height, width, window", [(8, 8, 4), (7, 10, 4), (3, 3, 4)])
def test_window_partition_and_merge_are_inverse(height, width, window):
    feature_map = torch.randn(2, height, width, 5)
    windows = partition_windows(feature_map, window)
    num_windows = -(-height // window) * -(-width // window)
    assert windows.shape == (2, num_windows, window * window, 5)
    assert torch.equal(merge_windows(windows, window, height, width), feature_map)
    # window w holds the tokens of block (row, col) of the (zero-padded) map, row-major inside
    if height % window == 0 and width % window == 0:
        torch.testing.assert_close(windows[1, 1], feature_map[1, :window, window : 2 * window].reshape(-1, 5))


def _direct_cross_attention(glwca, queries, global_tokens):
    """Reference: each token attends (all heads) to the global tokens, no windows."""
    batch, height, width, channels = queries.shape
    heads, head_dim = glwca.num_heads, channels // glwca.num_heads
    q = glwca.q_proj(queries.reshape(batch, -1, channels)).view(batch, -1, heads, head_dim).transpose(1, 2)
    k = glwca.k_proj(global_tokens).view(batch, -1, heads, head_dim).transpose(1, 2)
    v = glwca.v_proj(global_tokens).view(batch, -1, heads, head_dim).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, height, width, channels)
    return glwca.o_proj(out)


def test_glwca_windows_equal_direct_attention_and_degenerate_single_window():
    torch.manual_seed(1)
    glwca = GlobalLocalCrossAttention(8, 2, window=4, pool="avg", rel_bias=False)
    feature_map = torch.randn(2, 7, 10, 8)  # needs padding: 2 x 3 windows
    global_tokens = glwca.global_window(feature_map, 4)
    assert global_tokens.shape == (2, 16, 8)
    pooled = F.adaptive_avg_pool2d(feature_map.permute(0, 3, 1, 2), 4).flatten(2).transpose(1, 2)
    torch.testing.assert_close(global_tokens, glwca.global_proj(glwca.global_norm(pooled)))
    torch.testing.assert_close(
        glwca(feature_map, global_tokens, 4),
        _direct_cross_attention(glwca, feature_map, global_tokens),
        atol=1e-5,
        rtol=1e-5,
    )

    # degenerate: the map is one window; the global window is the map itself (pooling is the identity)
    single = torch.randn(1, 4, 4, 8)
    tokens = single.reshape(1, 16, 8)
    torch.testing.assert_close(glwca.global_window(single, 4), glwca.global_proj(glwca.global_norm(tokens)))
    out = glwca(single, glwca.global_window(single, 4), 4)
    torch.testing.assert_close(
        out, _direct_cross_attention(glwca, single, glwca.global_window(single, 4)), atol=1e-5, rtol=1e-5
    )
    with pytest.raises(ValueError, match="glwca_rel_bias"):
        GlobalLocalCrossAttention(8, 2, window=4, pool="avg", rel_bias=True)(
            torch.randn(1, 3, 3, 8), torch.randn(1, 9, 8), 3
        )


@pytest.mark.parametrize("image_size", [20, 16])
def test_gswin_encoder_reduces_to_swin_when_global_branch_is_silent(image_size):
    """With no Gswin stages, or with the GLWCA output projection zeroed, the encoder is exactly
    the pretrained Swin: shifted windows, padding (20 px: 10x10 then 5x5 maps, window 4) and the
    degenerate stage where one window covers the map (16 px: 4x4 map at stage 2)."""
    torch.manual_seed(2)
    config = SwinConfig(**{**VISION, "image_size": image_size})
    pixels = torch.randn(2, 3, image_size, image_size)
    plain = GswinVisionEncoder(config, gswin_stages=()).eval()
    gswin = GswinVisionEncoder(config, gswin_stages=(0, 1)).eval()
    gswin.swin.load_state_dict(plain.swin.state_dict())
    reference = plain.swin(pixels).last_hidden_state
    tokens = plain(pixels)
    assert tokens.shape == (2, 1 + (image_size // 4) ** 2, 16)
    torch.testing.assert_close(tokens[:, 1:], reference)
    torch.testing.assert_close(tokens[:, 0], reference.mean(1))
    assert not torch.allclose(gswin(pixels), tokens, atol=1e-3)
    for stage in gswin.global_attention:
        for block in stage:
            torch.nn.init.zeros_(block.o_proj.weight)
            torch.nn.init.zeros_(block.o_proj.bias)
    torch.testing.assert_close(gswin(pixels), tokens, atol=1e-5, rtol=1e-5)
    assert len(gswin.global_attention[0]) == 2 and len(plain.global_attention[0]) == 0


def test_encoders_shapes_and_itc_logits(model):
    pixels, ids, mask = batch()
    with torch.no_grad():
        images, texts = model.encode_images(pixels), model.encode_texts(ids, mask)
    assert images["embeds"].shape == (4, 8) and images["tokens"].shape == (4, 1 + 64, 16)
    assert (
        texts["embeds"].shape == (5, 8)
        and texts["tokens"].shape == (5, 6, 16)
        and torch.equal(texts["attention_mask"], mask)
    )
    torch.testing.assert_close(model.get_image_features(pixels), images["embeds"])
    torch.testing.assert_close(model.get_text_features(ids, mask), texts["embeds"])
    assert model.image_cache_keys == ("embeds", "tokens") and model.text_cache_keys == (
        "embeds",
        "tokens",
        "attention_mask",
    )
    with pytest.raises(ValueError, match="image_size"):
        model.encode_images(torch.randn(1, 3, 16, 16))


def _brute_force_score(model, images, texts, k, add_itc=False):
    itc = F.normalize(images["embeds"], dim=-1) @ F.normalize(texts["embeds"], dim=-1).t()
    num_images, num_texts = itc.shape
    candidates = set()
    for i in range(num_images):
        candidates |= {(i, j) for j in sorted(range(num_texts), key=lambda j: -itc[i, j])[:k]}
    for j in range(num_texts):
        candidates |= {(i, j) for i in sorted(range(num_images), key=lambda i: -itc[i, j])[:k]}
    expected = itc - 100.0
    for i, j in candidates:
        logits = model.itm_logits(
            images["tokens"][i : i + 1], texts["tokens"][j : j + 1], texts["attention_mask"][j : j + 1]
        )
        expected[i, j] = logits.softmax(-1)[0, 1] + (itc[i, j] if add_itc else 0.0)
    return expected, candidates


@pytest.mark.parametrize("k, add_itc", [(2, False), (1, True), (10, False)])
def test_two_stage_score_equals_pairwise_brute_force(model, k, add_itc):
    pixels, ids, mask = batch()
    model.config.itm_k_test, model.config.rerank_add_itc = k, add_itc
    try:
        with torch.no_grad():
            images, texts = model.encode_images(pixels), model.encode_texts(ids, mask)
            scores = model.score(images, texts)
            expected, candidates = _brute_force_score(model, images, texts, k, add_itc)
    finally:
        model.config.itm_k_test, model.config.rerank_add_itc = 2, False
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    assert int((scores > -50).sum()) == len(candidates)
    if k >= 5:
        assert len(candidates) == 20  # every pair is a candidate


def test_evaluator_scores_the_whole_matrix_in_one_block(model):
    """Top-k candidates depend on every text, so a text-blocked score would differ from `score`."""
    from rs_retrieval.evaluation.evaluator import score_matrix

    pixels, ids, mask = batch()
    with torch.no_grad():
        images, texts = model.encode_images(pixels), model.encode_texts(ids, mask)
        full = model.score(images, texts)
        blocked_by_hand = torch.cat(
            [model.score(images, {k: v[i : i + 2] for k, v in texts.items()}) for i in range(0, 5, 2)], dim=1
        )
    assert not torch.equal(blocked_by_hand, full)  # the hazard is real for this model
    torch.testing.assert_close(score_matrix(model, images, texts, chunk_size=2), full)


def test_k_zero_is_dual_encoder_only(model):
    pixels, ids, mask = batch()
    model.config.itm_k_test = 0
    try:
        with torch.no_grad():
            out = model(pixels, ids, mask)
    finally:
        model.config.itm_k_test = 2
    torch.testing.assert_close(
        out.logits_per_image, F.normalize(out.image_embeds, dim=-1) @ F.normalize(out.text_embeds, dim=-1).t()
    )


def test_itc_loss_per_element_with_multi_positive_targets():
    torch.manual_seed(3)
    v, t = F.normalize(torch.randn(4, 6), dim=-1), F.normalize(torch.randn(4, 6), dim=-1)
    ids, temp = torch.tensor([0, 0, 1, 2]), torch.tensor(0.1)
    logits = (v @ t.t() / temp).tolist()
    expected = 0.0
    for direction in (logits, [list(col) for col in zip(*logits)]):
        for a in range(4):
            positives = [b for b in range(4) if ids[b] == ids[a]]
            log_norm = torch.logsumexp(torch.tensor(direction[a]), 0).item()
            expected += -sum(direction[a][b] - log_norm for b in positives) / len(positives) / 4 / 2
    torch.testing.assert_close(itc_loss(v, t, temp, ids), torch.tensor(expected))
    single = 0.5 * (
        F.cross_entropy(v @ t.t() / temp, torch.arange(4)) + F.cross_entropy(t @ v.t() / temp, torch.arange(4))
    )
    torch.testing.assert_close(itc_loss(v, t, temp), single)


def test_improved_triplet_loss_per_element_pair_and_scene():
    torch.manual_seed(4)
    v, t = F.normalize(torch.randn(5, 6), dim=-1), F.normalize(torch.randn(5, 6), dim=-1)
    ids, scenes = torch.tensor([0, 0, 1, 2, 3]), torch.tensor([0, 0, 1, 1, 2])
    cos = (v @ t.t()).tolist()
    triplet = 0.0
    for a in range(5):
        negatives = [b for b in range(5) if ids[b] != ids[a]]
        triplet += max(0.0, 0.2 - cos[a][a] + max(cos[a][b] for b in negatives))
        triplet += max(0.0, 0.2 - cos[a][a] + max(cos[b][a] for b in negatives))
    pair_term = sum(1 - cos[a][a] for a in range(5))
    torch.testing.assert_close(improved_triplet_loss(v, t, 0.2, 0.5, ids), torch.tensor(triplet + 0.5 * pair_term))
    torch.testing.assert_close(
        improved_triplet_loss(v, t, 0.2, 0.5, ids, reduction="mean"), torch.tensor((triplet + 0.5 * pair_term) / 5)
    )
    vv, tt = (v @ v.t()).tolist(), (t @ t.t()).tolist()
    distances = [
        1 - m[a][b] for m in (vv, tt) for a in range(5) for b in range(5) if a != b and scenes[a] == scenes[b]
    ]
    distances += [1 - cos[a][b] for a in range(5) for b in range(5) if scenes[a] == scenes[b]]
    scene = improved_triplet_loss(v, t, 0.2, 0.5, ids, "scene", scenes)
    torch.testing.assert_close(scene, torch.tensor(triplet + 0.5 * sum(distances) / len(distances)))
    with pytest.raises(ValueError, match="scene_ids"):
        improved_triplet_loss(v, t, intra_class_mode="scene")


def test_itm_negatives_avoid_positives_and_follow_similarity():
    similarity = torch.tensor(
        [[5.0, 4.0, -9.0, -9.0], [4.0, 5.0, -9.0, 3.0], [0.0, 0.0, 5.0, 0.0], [0.0, 0.0, 0.0, 5.0]]
    )
    ids = torch.tensor([0, 0, 1, 2])
    generator = torch.Generator().manual_seed(0)
    draws = [sample_itm_negatives(similarity, ids, generator) for _ in range(200)]
    texts = torch.stack([d[0] for d in draws])
    images = torch.stack([d[1] for d in draws])
    for anchor in range(4):
        assert not (ids[texts[:, anchor]] == ids[anchor]).any() and not (ids[images[:, anchor]] == ids[anchor]).any()
    assert (texts[:, 1] == 3).float().mean() > 0.9  # text 3 is image 1's most similar non-positive
    with pytest.raises(ValueError, match="two distinct images"):
        sample_itm_negatives(similarity, torch.zeros(4, dtype=torch.long))


def test_compute_loss_terms(model):
    pixels, ids, mask = batch(num_images=4, num_texts=4)
    image_ids = torch.tensor([0, 0, 1, 2])
    torch.manual_seed(7)
    out = model(pixels, ids, mask, return_loss=True, image_ids=image_ids)
    torch.manual_seed(7)  # eval mode: the ITM negative sampling is the only random draw
    images, texts = model.encode_images(pixels), model.encode_texts(ids, mask)
    v, t = F.normalize(images["embeds"], dim=-1), F.normalize(texts["embeds"], dim=-1)
    torch.testing.assert_close(out.logits_per_image, v @ t.t())
    negative_text, negative_image = sample_itm_negatives(v @ t.t() / model.temperature, image_ids)
    logits = torch.cat(
        [
            model.itm_logits(images["tokens"][i : i + 1], texts["tokens"][j : j + 1], mask[j : j + 1])
            for i, j in [(a, a) for a in range(4)]
            + [(int(negative_image[a]), a) for a in range(4)]
            + [(a, int(negative_text[a])) for a in range(4)]
        ]
    )
    itm = F.cross_entropy(logits, torch.tensor([1] * 4 + [0] * 8))
    itc = itc_loss(v, t, model.temperature, image_ids)
    triplet = improved_triplet_loss(v, t, 0.2, 1.0, image_ids, reduction="mean")
    torch.testing.assert_close(out.loss_terms["itm"], itm, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.loss_terms["itc"], itc)
    torch.testing.assert_close(out.loss_terms["triplet"], triplet)
    torch.testing.assert_close(out.loss, itc + itm + triplet, atol=1e-5, rtol=1e-5)
    assert abs(model.temperature.item() - 0.07) < 1e-6


def test_pretrained_towers_split_one_bert_over_text_and_fusion(tmp_path):
    torch.manual_seed(5)
    swin = SwinModel(SwinConfig(**VISION), add_pooling_layer=False)
    bert = BertModel(BertConfig(**{**TEXT, "num_hidden_layers": 2}))
    swin.save_pretrained(tmp_path / "swin")
    bert.save_pretrained(tmp_path / "bert")
    model = CMPAGLModel.from_pretrained_towers(
        tiny_config(), vision_model_name_or_path=tmp_path / "swin", text_model_name_or_path=tmp_path / "bert"
    )
    model.init_weights()
    for key, value in swin.state_dict().items():
        assert torch.equal(model.vision_model.swin.state_dict()[key], value), key
    bert_state = bert.state_dict()
    for key, value in model.text_model.state_dict().items():
        assert torch.equal(value, bert_state[key]), key
    fusion = model.fusion.layers[0].state_dict()
    for key, value in bert_state.items():
        if key.startswith("encoder.layer.1."):
            assert torch.equal(fusion[key.removeprefix("encoder.layer.1.")], value), key
    assert not torch.equal(
        fusion["crossattention.self.query.weight"], bert_state["encoder.layer.1.attention.self.query.weight"]
    )
    BertModel(BertConfig(**TEXT)).save_pretrained(tmp_path / "shallow")
    with pytest.raises(ValueError, match="has 1 layers; the towers need 2"):
        CMPAGLModel.from_pretrained_towers(tiny_config(), text_model_name_or_path=tmp_path / "shallow")


def test_processor_recipe_and_round_trip(tmp_path):
    processor = CMPAGLProcessor.from_config(CMPAGLConfig(), VOCAB)
    image_processor = processor.image_processor
    assert processor.max_text_length == 40 and image_processor.resample == "bicubic"
    assert (
        image_processor.train_scale == [0.5, 1.0]
        and image_processor.train_hflip
        and image_processor.train_randaugment == [2, 7]
    )
    image = Image.fromarray((torch.rand(64, 64, 3) * 255).byte().numpy())
    eval_inputs = processor(images=[image, image], text=["a ship port"])
    assert eval_inputs["pixel_values"].shape == (2, 3, 224, 224) and eval_inputs["input_ids"].shape == (1, 40)
    assert torch.equal(eval_inputs["pixel_values"][0], eval_inputs["pixel_values"][1])  # no augmentation at eval
    train = processor(images=[image] * 4, train=True)["pixel_values"]
    assert not all(torch.equal(train[0], view) for view in train[1:])
    CMPAGLConfig().save_pretrained(tmp_path)  # the config the processor was built for (AutoProcessor checks the pair)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert (
        type(loaded) is CMPAGLProcessor
        and loaded.max_text_length == 40
        and loaded.image_processor.train_randaugment == [2, 7]
    )
    assert torch.equal(loaded(text=["a ship port"])["input_ids"], eval_inputs["input_ids"])
