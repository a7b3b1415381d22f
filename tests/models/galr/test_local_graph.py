"""GaLR on any image: local graphs from a transformers detector (tiny random-init OWL-ViT here)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_methods import GRU
from transformers import (
    AutoModel,
    AutoProcessor,
    CLIPTokenizer,
    OwlViTConfig,
    OwlViTForObjectDetection,
    OwlViTImageProcessor,
    OwlViTProcessor,
)

import rs_retrieval.models  # noqa: F401  (registers the Auto classes)
from rs_retrieval.errors import RSRetrievalError
from rs_retrieval.models.amfmn_family.tokenization_word import RSWordTokenizer
from rs_retrieval.models.common.processing import RSImageProcessor
from rs_retrieval.models.galr import GaLRConfig, GaLRModel, GaLRProcessor
from rs_retrieval.models.galr.local_graph import DEFAULT_DETECTOR, DOTA_CLASSES, LocalGraphError, reduce_proposals
from rs_retrieval.search import search_images

VOCAB = {w: i for i, w in enumerate("ship port green tree field road river building car plane".split(), start=1)} | {
    "<unk>": 11
}
GALR = dict(
    **GRU,
    embed_dim=8,
    train_resize=70,
    num_nodes=20,
    node_dim=20,
    gcn_dims=[6, 3, 5],
    mca_hidden=8,
    mca_heads=2,
    mca_ff=12,
    dynamic_fusion_dim=6,
)


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory):
    """A random-init OWL-ViT (16 patches = 16 proposals per image) with a character-level CLIP tokenizer."""
    folder = tmp_path_factory.mktemp("owlvit")
    chars = [chr(c) for c in range(33, 127)]
    vocab = {
        token: i for i, token in enumerate([*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"])
    }
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=24)
    text = dict(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=24,
        bos_token_id=len(vocab) - 2,
        eos_token_id=len(vocab) - 1,
        pad_token_id=len(vocab) - 1,
    )
    vision = dict(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    torch.manual_seed(0)
    OwlViTForObjectDetection(OwlViTConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(
        folder
    )
    image_processor = OwlViTImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32})
    OwlViTProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def images(n=2, size=48):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)) for _ in range(n)]


def test_reduce_proposals_thresholds_merges_overlaps_and_keeps_the_strongest():
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.05, 0.02], [0.3, 0.6]])
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.05, 0.0, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9], [0.6, 0.6, 1.0, 1.0]])
    assert reduce_proposals(scores, boxes, 0.1, 0.5, 20).tolist() == [
        0,
        3,
    ]  # 1 overlaps 0 (IoU 0.9); 2 is below threshold
    assert reduce_proposals(scores, boxes, 0.1, 0.95, 20).tolist() == [0, 1, 3]
    assert reduce_proposals(scores, boxes, 0.0, 0.95, 2).tolist() == [0, 1]


def test_graph_from_nodes_lays_out_descriptor_geometry_and_gaussian_adjacency():
    processor = GaLRProcessor(
        RSImageProcessor(size=64), RSWordTokenizer(vocab=VOCAB), num_nodes=4, node_dim=9, adjacency_sigma=0.5
    )
    features, adjacency = processor.graph_from_nodes(
        np.array([[0.7, 0.2], [0.1, 0.9]], np.float32), np.array([[0, 0, 0.2, 0.4], [0.6, 0.6, 1.0, 1.0]], np.float32)
    )
    np.testing.assert_allclose(features[0], [0.7, 0.2, 0.1, 0.2, 0.2, 0.4, 0.08, 0, 0], atol=1e-6)
    np.testing.assert_allclose(features[1], [0.1, 0.9, 0.8, 0.8, 0.4, 0.4, 0.16, 0, 0], atol=1e-6)
    off = np.exp(-((0.7**2 + 0.6**2) / (2 * 0.25)))
    np.testing.assert_allclose(adjacency[:2, :2], np.array([[1, off], [off, 1]]) / (1 + off), atol=1e-6)
    assert not features[2:].any() and not adjacency[2:].any() and not adjacency[:, 2:].any()


def test_detector_graphs_for_images_without_annotations(tiny_detector):
    processor = GaLRProcessor(
        RSImageProcessor(size=64),
        RSWordTokenizer(vocab=VOCAB),
        local_graph_extractor={"detector": str(tiny_detector), "score_threshold": 0.0, "nms_iou": 0.3},
    )
    inputs = processor.image_inputs({"image": images()})
    features, adjacency = inputs["local_features"], inputs["local_adjacency"]
    assert features.shape == (2, 20, 20) and adjacency.shape == (2, 20, 20)
    nodes = (adjacency.sum(-1) > 0).sum(-1)
    assert ((nodes >= 1) & (nodes <= 16)).all()  # 16 proposals, overlapping ones merged
    for b in range(2):
        n = int(nodes[b])
        torch.testing.assert_close(adjacency[b, :n].sum(-1), torch.ones(n))
        scores = features[b, :n, : len(DOTA_CLASSES)]
        assert ((scores >= 0) & (scores <= 1)).all()
        strength = scores.max(-1).values
        assert (strength[:-1] >= strength[1:]).all()  # strongest first
        cx, cy, w, h, area = features[b, :n, 15:20].T
        torch.testing.assert_close(area, w * h)
        assert not features[b, n:].any()


def test_extractor_is_saved_with_the_processor_and_auto_classes_search_any_folder(tiny_detector, tmp_path):
    settings = {"detector": str(tiny_detector), "score_threshold": 0.0}
    processor = GaLRProcessor.from_config(GaLRConfig(**GALR), VOCAB, local_graph_extractor=settings)
    torch.manual_seed(0)
    GaLRModel(GaLRConfig(**GALR)).save_pretrained(tmp_path / "galr")
    processor.save_pretrained(tmp_path / "galr")
    saved = json.loads((tmp_path / "galr" / "processor_config.json").read_text())["local_graph_extractor"]
    assert saved == {"detector": str(tiny_detector), "class_names": None, "score_threshold": 0.0, "nms_iou": 0.5}
    model, loaded = AutoModel.from_pretrained(tmp_path / "galr"), AutoProcessor.from_pretrained(tmp_path / "galr")
    assert loaded.local_graph_extractor == saved
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(images(3)):
        image.save(folder / f"p{i}.jpg")
    results = search_images("ship port", folder, model, loaded, top_k=None, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p, _ in results) == ["p0.jpg", "p1.jpg", "p2.jpg"]


def test_unavailable_detector_is_a_clear_error():
    processor = GaLRProcessor(
        RSImageProcessor(size=64), RSWordTokenizer(vocab=VOCAB)
    )  # the default: a Hub id, offline here
    assert processor.local_graph_extractor["detector"] == DEFAULT_DETECTOR
    with pytest.raises(LocalGraphError, match=f"detector '{DEFAULT_DETECTOR}', which could not be loaded") as caught:
        processor.image_inputs({"image": images(1)})
    assert isinstance(caught.value, RSRetrievalError)


def test_a_closed_set_detr_detector_uses_its_own_labels(tmp_path):
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig

    backbone = ResNetConfig(
        hidden_sizes=[8, 8, 16, 16], depths=[1, 1, 1, 1], embedding_size=8, out_features=["stage4"]
    )
    labels = dict(enumerate(DOTA_CLASSES))
    config = DetrConfig(
        use_timm_backbone=False,
        use_pretrained_backbone=False,
        backbone_config=backbone,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=12,
        id2label=labels,
        label2id={name: i for i, name in labels.items()},
    )
    torch.manual_seed(0)
    DetrForObjectDetection(config).save_pretrained(tmp_path / "detr")
    DetrImageProcessor(size={"shortest_edge": 32, "longest_edge": 48}).save_pretrained(tmp_path / "detr")
    processor = GaLRProcessor(
        RSImageProcessor(size=64),
        RSWordTokenizer(vocab=VOCAB),
        local_graph_extractor={"detector": str(tmp_path / "detr"), "score_threshold": 0.0},
    )
    assert processor.extractor.classes == list(DOTA_CLASSES)
    ((scores, boxes),) = processor.extractor.detect([np.asarray(images(1)[0])])
    assert (
        scores.shape == (12, 15) and boxes.shape == (12, 4) and (scores.sum(-1) <= 1 + 1e-6).all()
    )  # softmax without "no object"
    features = processor.image_inputs({"image": images(2)})["local_features"]
    assert features.shape == (2, 20, 20) and features[:, 0, :15].sum(-1).gt(0).all()
