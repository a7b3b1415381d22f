import functools
import math

import pytest
import tiny_methods
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_methods import WORDPIECE, token_batch
from transformers import AutoConfig, AutoModel, AutoProcessor, BertConfig, BertModel, ResNetModel

import rs_retrieval.models  # noqa: F401  (registers the Auto classes)
from rs_retrieval.models.msa import MSCMAT, MSAConfig, MSAModel, MSAProcessor, csmmc_loss, msa_triplet_loss, mscma_loss

VOCAB = WORDPIECE


METHOD = "msa"  # the `model` fixture (tests/models/conftest.py) builds its tiny model
tiny_config = functools.partial(tiny_methods.tiny_config, METHOD)
batch = functools.partial(token_batch, num_images=4, num_texts=4, length=8, padded_from=5)


def test_config_sub_configs_round_trip(tmp_path):
    config = tiny_config(w_mscma=3.0, mscmat_mask_padding=True)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is MSAConfig
    assert isinstance(loaded.text_config, BertConfig) and isinstance(loaded.vision_config, type(config.vision_config))
    assert loaded.scale_dims == [8, 8, 16, 16] and loaded.w_mscma == 3.0 and loaded.mscmat_mask_padding
    expected, got = config.to_dict(), loaded.to_dict()
    expected.pop("_name_or_path", None), got.pop("_name_or_path", None)
    assert got == expected
    default = MSAConfig()
    assert default.scale_dims == [256, 512, 1024, 2048] and default.text_config.num_hidden_layers == 12
    assert (default.w_triplet, default.w_mscma, default.w_csmmc, default.csmmc_tau, default.triplet_margin) == (
        1.0,
        15.0,
        10.0,
        2.0,
        0.5,
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(scale_pool=["max", "avg"]), "4 stages"),
        (dict(scale_pool=["max", "max", "sum", "avg"]), "scale_pool"),
        (dict(teacher_scale=4), "teacher_scale"),
    ],
)
def test_config_rejects_inconsistent_fields(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)
    with pytest.raises(ValueError, match="hidden_size"):
        MSAConfig(hidden_size=512)


def test_encoders_shapes_pooling_and_cosine_logits(model):
    pixels, ids, mask = batch(num_images=3, num_texts=5)
    with torch.no_grad():
        images, texts = model.encode_images(pixels), model.encode_texts(ids, mask)
        stages = model.vision_model(pixels)
        out = model(pixels, ids, mask)
    assert images["embeds"].shape == (3, 16) and texts["embeds"].shape == (5, 16)
    assert [images[f"scale_{k}"].shape[1] for k in range(4)] == [8, 8, 16, 16]
    # max-pooled stages 1-3, average-pooled stage 4; fused = sum of projections; gated head
    for k, pool in enumerate(["max", "max", "max", "avg"]):
        expected = stages[k].amax((2, 3)) if pool == "max" else stages[k].mean((2, 3))
        torch.testing.assert_close(images[f"scale_{k}"], expected)
    fused = sum(model.scale_proj[k](images[f"scale_{k}"]) for k in range(4))
    u = model.image_head.proj(fused)
    torch.testing.assert_close(images["embeds"], model.image_head.out(u * torch.sigmoid(model.image_head.gate(u))))
    assert texts["tokens"].shape == (5, 7, 16) and texts["token_mask"][0].tolist() == [1, 1, 1, 1, 0, 0, 0]
    cosine = F.normalize(images["embeds"], dim=-1) @ F.normalize(texts["embeds"], dim=-1).t()
    torch.testing.assert_close(out.logits_per_image, cosine)
    torch.testing.assert_close(model.get_image_features(pixels), images["embeds"])
    with pytest.raises(ValueError, match="image_size"):
        model.get_image_features(torch.randn(1, 3, 48, 48))


@pytest.mark.parametrize("mask_padding", [False, True])
def test_mscmat_equals_reference_pairwise_multihead_attention(mask_padding):
    """The factorised all-pairs attention equals nn.MultiheadAttention over the B^2 repeated pairs."""
    torch.manual_seed(1)
    dims, hidden, heads, num_images, num_texts, length = [6, 10], 16, 4, 3, 5, 7
    mscmat = MSCMAT(dims, hidden, heads, mask_padding).eval()
    for mha in mscmat.attention:  # non-trivial biases
        torch.nn.init.normal_(mha.in_proj_bias)
        torch.nn.init.normal_(mha.out_proj.bias)
    scales = [torch.randn(num_images, d) for d in dims]
    tokens, cls = torch.randn(num_texts, length, hidden), F.normalize(torch.randn(num_texts, hidden), dim=-1)
    token_mask = torch.ones(num_texts, length, dtype=torch.long)
    token_mask[1, 3:] = 0
    scores = mscmat(scales, tokens, cls, token_mask)
    assert scores.shape == (2, num_images, num_texts)
    for k in range(len(dims)):
        query = mscmat.query_proj[k](scales[k]).repeat_interleave(num_texts, 0)  # pair p = i * M + j
        kv = mscmat.token_norm(tokens).repeat(num_images, 1, 1)
        padding = (token_mask == 0).repeat(num_images, 1) if mask_padding else None
        attended = mscmat.attention[k](
            mscmat.query_norm(query)[None],
            kv.transpose(0, 1),
            kv.transpose(0, 1),
            key_padding_mask=padding,
            need_weights=False,
        )[0][0]
        reference = torch.sigmoid(mscmat.match_head[k]((attended + cls.repeat(num_images, 1)) * query)).view(
            num_images, num_texts
        )
        torch.testing.assert_close(scores[k], reference, atol=1e-5, rtol=1e-5)


def test_triplet_loss_matches_per_element_reference():
    torch.manual_seed(2)
    cosine = torch.rand(5, 5) * 2 - 1
    image_ids = torch.tensor([0, 0, 1, 2, 3])
    for ids, margin, alpha in ((None, 0.5, 1.0), (image_ids, 0.3, 0.7)):
        expected = 0.0
        for a in range(5):
            allowed = [j for j in range(5) if j != a and (ids is None or ids[j] != ids[a])]
            neg_text = max(allowed, key=lambda j: cosine[a, j])
            neg_image = max(allowed, key=lambda i: cosine[i, a])
            pos = 2 - cosine[a, a]
            expected += max(0.0, margin + alpha * pos - (2 - cosine[a, neg_text]))
            expected += max(0.0, margin + alpha * pos - (2 - cosine[neg_image, a]))
        torch.testing.assert_close(msa_triplet_loss(cosine, margin, alpha, ids), torch.tensor(float(expected)))


def test_mscma_loss_per_element_and_reference_floor():
    torch.manual_seed(3)
    scores = torch.rand(4, 3, 3)
    expected = sum(
        -math.log(math.exp(s[i][i]) / sum(math.exp(s[i][j]) for j in range(3))) / 3
        for s in scores.tolist()
        for i in range(3)
    )
    torch.testing.assert_close(mscma_loss(scores), torch.tensor(expected))
    symmetric = sum(
        0.5 * (F.cross_entropy(s / 0.5, torch.arange(3)) + F.cross_entropy(s.t() / 0.5, torch.arange(3)))
        for s in scores
    )
    torch.testing.assert_close(mscma_loss(scores, temperature=0.5, symmetric=True), symmetric)
    # perfect sigmoid scores (1 on the diagonal, 0 elsewhere) hit the bound log(1 + (B - 1) / e) per scale
    perfect = torch.eye(32).expand(4, 32, 32)
    torch.testing.assert_close(mscma_loss(perfect), torch.tensor(4 * math.log(1 + 31 / math.e)))


def test_csmmc_loss_is_reference_reverse_kl_and_optional_forward_kl():
    torch.manual_seed(4)
    scores = torch.rand(4, 3, 3, requires_grad=True)
    tau, size = 2.0, 3
    # the reference call: kl_div(log Q^T, P_k^T, reduction='mean') per student (softmax over images),
    # i.e. the element sum divided by B^2 (torch announces 'mean' will become 'batchmean')
    teacher = torch.softmax(scores[3].detach() / tau, dim=0)
    reference = sum(
        F.kl_div(teacher.t().log(), torch.softmax(scores[k] / tau, dim=0).t(), reduction="sum") / size**2
        for k in range(3)
    )
    loss = csmmc_loss(scores, teacher_scale=3, tau=tau)
    torch.testing.assert_close(loss, reference)
    expected_forward = 0.0
    for k in range(3):
        student = torch.softmax(scores[k].detach() / tau, dim=0)
        for j in range(size):
            expected_forward += (
                sum(float(teacher[i, j] * (teacher[i, j].log() - student[i, j].log())) for i in range(size)) / size
            )
    torch.testing.assert_close(csmmc_loss(scores, 3, tau, forward_kl=True), torch.tensor(expected_forward))
    loss.backward()  # the teacher is detached: no gradient reaches scale 4
    assert torch.count_nonzero(scores.grad[3]) == 0 and torch.count_nonzero(scores.grad[0]) > 0


def test_compute_loss_combines_weighted_terms(model):
    pixels, ids, mask = batch()
    out = model(pixels, ids, mask, return_loss=True)
    images, texts = model.encode_images(pixels), model.encode_texts(ids, mask)
    scores = model.mscmat_scores(images, texts)
    triplet = msa_triplet_loss(out.logits_per_image)
    torch.testing.assert_close(out.loss_terms["triplet"], triplet)
    torch.testing.assert_close(out.loss_terms["mscma"], mscma_loss(scores))
    torch.testing.assert_close(out.loss_terms["csmmc"], csmmc_loss(scores))
    torch.testing.assert_close(out.loss, triplet + 15 * mscma_loss(scores) + 10 * csmmc_loss(scores))
    with pytest.raises(ValueError, match="image_ids"):
        MSAModel(tiny_config(triplet_mask_same_image=True))(pixels, ids, mask, return_loss=True)


def test_training_only_mscmat_survives_save_and_load(model, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    pixels, ids, mask = batch()
    with torch.no_grad():
        a = model.mscmat_scores(model.encode_images(pixels), model.encode_texts(ids, mask))
        b = loaded.mscmat_scores(loaded.encode_images(pixels), loaded.encode_texts(ids, mask))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_init_follows_reference_and_keeps_loaded_towers(tmp_path):
    torch.manual_seed(5)
    mscmat_model = MSAModel(tiny_config())
    for mha in mscmat_model.mscmat.attention:
        assert torch.count_nonzero(mha.in_proj_bias) == 0 and torch.count_nonzero(mha.out_proj.bias) == 0
    big = MSCMAT([2048], 768, 12, False)
    MSAModel._init_weights(mscmat_model, big.attention[0])
    assert abs(big.attention[0].in_proj_weight.std().item() - 768**-0.5) < 0.02 * 768**-0.5
    assert abs(big.attention[0].out_proj.weight.std().item() - 768**-0.5 / math.sqrt(2)) < 0.03 * 768**-0.5
    bound = 1 / math.sqrt(8)
    assert (
        mscmat_model.scale_proj[0].weight.abs().max() <= bound and mscmat_model.scale_proj[0].bias.abs().max() <= bound
    )

    # pretrained towers: the loaded weights survive the model's own initialisation
    resnet = ResNetModel(tiny_config().vision_config)
    bert = BertModel(tiny_config().text_config)  # with a pooler: ignored
    resnet.save_pretrained(tmp_path / "resnet")
    bert.save_pretrained(tmp_path / "bert")
    loaded = MSAModel.from_pretrained_towers(
        tiny_config(), vision_model_name_or_path=tmp_path / "resnet", text_model_name_or_path=tmp_path / "bert"
    )
    loaded.init_weights()
    for key, value in resnet.state_dict().items():
        assert torch.equal(loaded.vision_model.resnet.state_dict()[key], value), key
    for key, value in loaded.text_model.state_dict().items():
        assert torch.equal(value, bert.state_dict()[key]), key
    assert loaded.config.text_model_name == str(tmp_path / "bert")
    BertModel(BertConfig(**{**tiny_config().text_config.to_dict(), "hidden_size": 32})).save_pretrained(
        tmp_path / "wide"
    )
    with pytest.raises(ValueError, match="shape mismatch"):
        MSAModel.from_pretrained_towers(tiny_config(), text_model_name_or_path=tmp_path / "wide")


def test_processor_pads_to_31_and_round_trips(tmp_path):
    processor = MSAProcessor.from_config(MSAConfig(), VOCAB)
    assert processor.max_text_length == 31 and processor.image_processor.size == 224
    inputs = processor(images=[Image.new("RGB", (256, 256), (10, 200, 30))] * 2, text=["A ship", "green fields port"])
    assert inputs["pixel_values"].shape == (2, 3, 224, 224)
    assert inputs["input_ids"].shape == (2, 31)
    assert inputs["input_ids"][1, :6].tolist() == [2, 9, 10, 8, 7, 3] and inputs["attention_mask"][1].sum() == 6
    # training views equal the eval view: MSA does no augmentation
    train = processor(images=[Image.new("RGB", (256, 256), (10, 200, 30))], train=True)["pixel_values"]
    torch.testing.assert_close(train, inputs["pixel_values"][:1])
    MSAConfig().save_pretrained(tmp_path)  # the config the processor was built for (AutoProcessor checks the pair)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is MSAProcessor and loaded.max_text_length == 31
    assert torch.equal(loaded(text=["A ship"])["input_ids"], processor(text=["A ship"])["input_ids"])
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n")
    assert torch.equal(
        MSAProcessor.from_config(MSAConfig(), vocab_file)(text=["A ship"])["input_ids"],
        processor(text=["A ship"])["input_ids"],
    )
    with pytest.raises(ValueError, match="special tokens"):
        MSAProcessor.from_config(MSAConfig(), {"ship": 0})
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        MSAProcessor.from_config(MSAConfig(), tmp_path / "nope.txt")
