import pytest
import torch
from tiny_methods import WORDS, tiny_config
from torch import nn
from transformers import AutoConfig, AutoProcessor

import rs_retrieval.models  # noqa: F401  (registers the Auto classes)
from rs_retrieval.models.amfmn import AMFMNConfig, AMFMNModel, AMFMNProcessor, modeling_amfmn
from rs_retrieval.models.amfmn_family.skipthought import SkipThoughtEncoder
from rs_retrieval.models.common.losses import dynamic_margin, hinge_triplet_loss

VOCAB = WORDS


def tiny_model(**overrides):
    torch.manual_seed(0)
    return AMFMNModel(tiny_config("amfmn", **overrides)).eval()


def inputs(num_images=3, num_texts=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(num_images, 3, 64, 64, generator=generator)
    ids = torch.randint(1, 12, (num_texts, 5), generator=generator)
    ids[1, 3:] = 0
    return pixels, ids


def test_default_config_keeps_reference_numbers():
    config = AMFMNConfig()
    assert (config.vocab_size, config.word_embed_dim, config.text_hidden_dim, config.embed_dim) == (
        1350,
        620,
        2400,
        512,
    )
    assert (config.multiscale_in, config.multiscale_out, config.image_size, config.att_type) == (3, 1, 256, "soft_att")
    assert (config.margin, config.max_violation, config.dynamic_margin, config.text_dropout) == (
        0.2,
        False,
        None,
        0.25,
    )
    settings = AMFMNProcessor.image_settings(config)
    assert (settings["train_resize"], settings["train_rotation_degrees"], "train_resize" in config.to_dict()) == (
        278,
        0.0,
        False,
    )
    assert config.backbone_hidden_sizes == [64, 128, 256, 512] and config.backbone_depths == [2, 2, 2, 2]
    for bad, message in (
        ({"att_type": "dot"}, "att_type"),
        ({"image_size": 100}, "multiple of 32"),
        ({"dynamic_margin": {"gamma": 0.6}}, "beta"),
    ):
        with pytest.raises(ValueError, match=message):
            AMFMNConfig(**bad)


def test_visual_branch_shapes_follow_the_mvsa_table():
    model = tiny_model()
    pixels, _ = inputs()
    lower, higher, v_g = model.extract_feature(pixels)
    # 64 px: f1 16x16 (4+4 ch), f3 4x4 (8+8 ch); map side 64 / 16 = 4 -> solo_attention takes 4*4 = 16 inputs
    assert lower.shape == (3, 8, 16, 16) and higher.shape == (3, 16, 4, 4) and v_g.shape == (3, 6)
    assert model.mvsa.LF_conv(lower).shape == (3, 3, 4, 4) and model.mvsa.solo_attention.in_features == 16
    out = model(*inputs())
    assert out.logits_per_image.shape == (3, 4) and out.logits_per_text.shape == (4, 3)
    assert out.image_embeds.shape == (3, 6) and out.text_embeds.shape == (4, 6) and (out.text_embeds >= 0).all()


def test_wrong_input_size_is_rejected_with_the_expected_shape():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"\[batch, 3, 64, 64\].*\(2, 3, 96, 96\)"):
        model.get_image_features(torch.randn(2, 3, 96, 96))


def pair_reference(model, visual, text):
    """Per-pair loop over the VGA formulas of AMFMN's Eq. 20-25 as the released code computes them (test only)."""
    head, scores = model.cross_attention_s, torch.zeros(len(visual), len(text))
    for i, v in enumerate(visual):
        for j, t in enumerate(text):
            if head.att_type == "soft_att":
                gated = torch.sigmoid(head.cross_attention[0](v)) * t
            elif head.att_type == "fusion_att":
                u = torch.cat([v, t])
                gated = head.cross_attention_fc1(u) * head.cross_attention_fc2(u)
            else:
                c = head.fc_text(t)
                gated = torch.sigmoid(head.fc_visual(v) * c) * c
            scores[i, j] = (v * gated).sum() / torch.clamp(v.norm() * gated.norm(), min=1e-8)
    return scores


@pytest.mark.parametrize("att_type", ["soft_att", "fusion_att", "similarity_att"])
def test_batched_similarity_equals_per_pair_reference(att_type, monkeypatch):
    model = tiny_model(att_type=att_type)
    visual, text = torch.randn(5, 6), torch.rand(7, 6)
    text[3] = 0.0  # a zero caption vector exercises the 1e-8 clamp
    monkeypatch.setattr(modeling_amfmn, "SCORE_CHUNK_ELEMENTS", 2 * 7 * 6)  # several image chunks
    with torch.no_grad():
        torch.testing.assert_close(
            model.similarity(visual, text), pair_reference(model, visual, text), rtol=1e-5, atol=1e-6
        )


def gru_reference(encoder: SkipThoughtEncoder, input_ids):
    """nn.GRU with the mapped weights (converter layout), gathered at each last real token."""
    cell = encoder.rnn.gru_cell
    hidden = cell.weight_hr.in_features
    gru = nn.GRU(encoder.embedding.embedding_dim, hidden, batch_first=True)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.cat([cell.weight_ir.weight, cell.weight_ii.weight, cell.weight_in.weight]))
        gru.bias_ih_l0.copy_(torch.cat([cell.weight_ir.bias, cell.weight_ii.bias, cell.weight_in.bias]))
        gru.weight_hh_l0.copy_(torch.cat([cell.weight_hr.weight, cell.weight_hi.weight, cell.weight_hn.weight]))
        gru.bias_hh_l0.zero_()
        states, _ = gru(encoder.embedding(input_ids))
    lengths = (input_ids != 0).sum(1)
    steps = int(lengths.max())
    last = torch.where(lengths > 0, lengths - 1, torch.full_like(lengths, steps - 1))
    return states[torch.arange(len(input_ids)), last]


def test_custom_gru_equals_nn_gru_in_eval_mode():
    torch.manual_seed(1)
    encoder = SkipThoughtEncoder(vocab_size=20, word_embed_dim=7, hidden_dim=9, dropout=0.25).eval()
    ids = torch.tensor([[3, 4, 5, 6, 0, 0, 0], [7, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 0]])
    with torch.no_grad():
        out = encoder(ids)
        torch.testing.assert_close(out, gru_reference(encoder, ids), rtol=1e-5, atol=1e-6)
        # the blank caption takes the batch's last computed step (6 steps here), like the reference
        assert not torch.allclose(out[2], encoder(ids[2:3])[0])


def test_variational_dropout_only_in_training():
    torch.manual_seed(2)
    encoder = SkipThoughtEncoder(vocab_size=20, word_embed_dim=7, hidden_dim=9, dropout=0.5)
    ids = torch.randint(1, 20, (4, 6))
    encoder.eval()
    assert torch.equal(encoder(ids), encoder(ids))
    encoder.train()
    assert not torch.allclose(encoder(ids), encoder(ids))
    with pytest.raises(ValueError, match="dropout"):
        SkipThoughtEncoder(5, 2, 2, dropout=1.0)
    with pytest.raises(ValueError, match="range"):
        encoder(torch.tensor([[25, 1]]))
    with pytest.raises(ValueError, match="right-padded"):
        encoder(torch.tensor([[0, 3, 4]]))
    model = tiny_model()
    with pytest.raises(ValueError, match="attention_mask"):
        model.get_text_features(torch.tensor([[3, 4, 0]]), attention_mask=torch.tensor([[1, 1, 1]]))


def test_processor_follows_the_config_and_saves_the_method_settings(tmp_path):
    # (save/load and Auto round trips of every method: tests/models/test_model_contract.py)
    model = tiny_model(att_type="fusion_att")
    processor = AMFMNProcessor.from_config(model.config, VOCAB)
    assert processor(text=["The ship is in the port."])["input_ids"].tolist()[0] == [11, 1, 11, 11, 11, 2]
    model.config.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, AMFMNConfig) and config.att_type == "fusion_att" and config.image_size == 64
    reprocessor = AutoProcessor.from_pretrained(tmp_path)
    assert (
        reprocessor.image_processor.size,
        reprocessor.image_processor.train_resize,
        reprocessor.image_processor.train_rotation_degrees,
    ) == (64, 70, 0.0)
    with pytest.raises(ValueError, match="image size comes from the model config"):
        AMFMNProcessor.from_config(model.config, VOCAB, size=32)
    with pytest.raises(ValueError, match="config.vocab_size"):
        AMFMNProcessor.from_config(model.config, {"ship": 1, "<unk>": 2})


def test_loss_is_the_reference_sum_hinge_and_dynamic_margin_needs_a_prior():
    model = tiny_model()
    pixels, ids = inputs(4, 4)
    out = model(pixels, ids, return_loss=True)
    scores = out.logits_per_image
    positives = scores.diagonal()
    manual = sum(
        max(0.0, 0.2 + scores[i, j] - positives[i]) + max(0.0, 0.2 + scores[i, j] - positives[j])
        for i in range(4)
        for j in range(4)
        if i != j
    )
    torch.testing.assert_close(out.loss, torch.as_tensor(manual, dtype=out.loss.dtype))
    hardest = tiny_model(max_violation=True)(pixels, ids, return_loss=True)
    torch.testing.assert_close(hardest.loss, hinge_triplet_loss(hardest.logits_per_image, 0.2, hardest_negative=True))

    dynamic = tiny_model(dynamic_margin={"gamma": 0.6, "beta": 5.0})
    with pytest.raises(ValueError, match="prior_similarity"):
        dynamic(pixels, ids, return_loss=True)
    prior = torch.rand(4, 4)
    out = dynamic(pixels, ids, return_loss=True, prior_similarity=prior)
    torch.testing.assert_close(out.loss, hinge_triplet_loss(out.logits_per_image, dynamic_margin(prior, 0.6, 5.0)))
    with pytest.raises(ValueError, match="score shape"):
        dynamic(pixels, ids, return_loss=True, prior_similarity=torch.rand(3, 4))


def test_full_size_default_model_runs_one_batch_with_reference_parameter_count():
    model = AMFMNModel(AMFMNConfig()).eval()
    # spec: 36,696,228 including torchvision's unused fc (513,000) and the unused vgmf_gate (524,800)
    assert sum(p.numel() for p in model.parameters()) == 36_696_228 - 513_000 - 524_800
    with torch.no_grad():
        out = model(torch.randn(2, 3, 256, 256), torch.randint(1, 1350, (3, 9)))
        assert out.logits_per_image.shape == (2, 3) and torch.isfinite(out.logits_per_image).all()
        with pytest.raises(ValueError, match="256, 256"):
            model.get_image_features(torch.randn(1, 3, 224, 224))
