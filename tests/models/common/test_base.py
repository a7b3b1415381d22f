import pytest
import torch
from PIL import Image
from toy_model import ToyConfig, ToyModel
from transformers import BertTokenizer

from rs_retrieval.models.common.base import RetrievalPreTrainedModel
from rs_retrieval.models.common.losses import hinge_triplet_loss
from rs_retrieval.models.common.processing import RetrievalProcessor, RSImageProcessor
from rs_retrieval.models.common.towers import ResNetTrunk, resnet_config

TINY = dict(hidden_sizes=[4, 4, 4, 8], embedding_size=4, depths=[1, 1, 1, 1])


def toy(model_class=ToyModel):
    return model_class(ToyConfig(embed_dim=6, vocab_size=16))


class NoLossToyModel(ToyModel):
    compute_loss = RetrievalPreTrainedModel.compute_loss


class TowerToyModel(ToyModel):
    """The toy with a ResNet trunk as its vision tower (what `from_pretrained_towers` fills)."""

    vision_tower_path = "trunk"

    def __init__(self, config):
        super().__init__(config)
        self.trunk = ResNetTrunk(resnet_config("resnet18", **TINY))


def test_forward_is_cosine_of_features_and_transposed():
    model = toy().eval()
    pixels, ids = torch.randn(3, 3, 32, 32), torch.randint(0, 16, (5, 4))
    out = model(pixels, ids)
    img = torch.nn.functional.normalize(model.get_image_features(pixels), dim=-1)
    txt = torch.nn.functional.normalize(model.get_text_features(ids), dim=-1)
    assert out.logits_per_image.shape == (3, 5)
    torch.testing.assert_close(out.logits_per_image, img @ txt.t())
    torch.testing.assert_close(out.logits_per_text, out.logits_per_image.t())
    assert out.loss is None


def test_return_loss_uses_compute_loss_and_requires_one():
    pixels, ids = torch.randn(4, 3, 32, 32), torch.randint(0, 16, (4, 4))
    out = toy()(pixels, ids, return_loss=True, image_ids=torch.tensor([0, 0, 1, 2]))
    assert out.loss.ndim == 0 and set(out.loss_terms) == {"triplet", "positive_cosine"}
    with pytest.raises(TypeError, match="NoLossToyModel defines no training loss"):
        toy(NoLossToyModel)(pixels, ids, return_loss=True)


def test_from_pretrained_towers_loads_the_vision_tower(tmp_path):
    donor = ResNetTrunk(resnet_config("resnet18", **TINY))
    donor.resnet.save_pretrained(tmp_path / "resnet")
    model = TowerToyModel.from_pretrained_towers(ToyConfig(), vision_model_name_or_path=str(tmp_path / "resnet"))
    for key, value in donor.resnet.state_dict().items():
        assert torch.equal(model.trunk.resnet.state_dict()[key], value)
    with pytest.raises(ValueError, match="no pretrained tower"):
        TowerToyModel.from_pretrained_towers(ToyConfig(), text_model_name_or_path=str(tmp_path / "resnet"))


def test_processor_builds_model_inputs():
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ship", "port"])}
    processor = RetrievalProcessor(
        image_processor=RSImageProcessor(size=32), tokenizer=BertTokenizer(vocab=vocab, model_max_length=8)
    )
    from PIL import Image

    batch = processor(images=[Image.new("RGB", (40, 40))] * 2, text=["ship port", "port"])
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["input_ids"].tolist() == [[2, 5, 6, 3], [2, 6, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    with pytest.raises(ValueError, match="images"):
        processor()


class SceneLossToyModel(ToyModel):
    """Declares a loss-only input: forward must route it to compute_loss, not the image encoder."""

    loss_input_names = ("scene_ids",)

    def compute_loss(self, image_outputs, text_outputs, logits_per_image, image_ids=None, scene_ids=None):
        loss = hinge_triplet_loss(logits_per_image, image_ids=scene_ids)
        return loss, {"scene_ids_seen": scene_ids.sum()}


def test_loss_inputs_reach_compute_loss_and_the_collator_adds_only_declared_ones():
    from rs_retrieval.training.data import TrainCollator

    pixels, ids, scenes = torch.randn(3, 3, 32, 32), torch.randint(0, 16, (3, 4)), torch.tensor([1, 1, 2])
    out = toy(SceneLossToyModel)(pixels, ids, return_loss=True, scene_ids=scenes)
    assert out.loss_terms["scene_ids_seen"].item() == 4
    assert out.loss.item() == pytest.approx(hinge_triplet_loss(out.logits_per_image, image_ids=scenes).item())
    with pytest.raises(TypeError):  # an undeclared input still goes to the image encoder, which refuses it
        toy()(pixels, ids, return_loss=True, scene_ids=scenes)
    processor = RetrievalProcessor(RSImageProcessor(size=32), BertTokenizer(vocab={"[PAD]": 0, "[UNK]": 1, "ship": 2}))
    rows = [
        {"image": Image.new("RGB", (32, 32)), "caption": "ship", "image_index": i, "caption_index": 0, "scene": i % 2}
        for i in range(2)
    ]
    assert "scene_ids" in TrainCollator(processor, 0, loss_input_names=SceneLossToyModel.loss_input_names)(rows)
    assert "scene_ids" not in TrainCollator(processor, 0, loss_input_names=ToyModel.loss_input_names)(rows)
