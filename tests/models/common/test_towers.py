import pytest
import torch

from rs_retrieval.models.common.towers import ResNetTrunk, load_tower_weights, resnet_config

TINY = dict(hidden_sizes=[8, 16, 16, 32], embedding_size=8, depths=[1, 1, 1, 1])


def test_trunk_returns_four_stages_with_strides():
    trunk = ResNetTrunk(resnet_config("resnet18", **TINY)).eval()
    stages = trunk(torch.randn(2, 3, 64, 64))
    assert [tuple(s.shape) for s in stages] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4), (2, 32, 2, 2)]
    assert trunk.stage_channels == [8, 16, 16, 32]


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="resnet101"):
        resnet_config("resnet101")


def test_full_size_variants_have_reference_parameter_counts():
    counts = {v: sum(p.numel() for p in ResNetTrunk(resnet_config(v)).parameters()) for v in ("resnet18", "resnet50")}
    # torchvision ResNet-18/50 without the fc layer: 11,176,512 and 23,508,032 parameters
    assert counts == {"resnet18": 11_176_512, "resnet50": 23_508_032}


def test_load_tower_weights_copies_pretrained_and_rejects_mismatch(tmp_path):
    source = ResNetTrunk(resnet_config("resnet18", **TINY))
    source.resnet.save_pretrained(tmp_path / "pretrained")
    target = ResNetTrunk(resnet_config("resnet18", **TINY))
    load_tower_weights(target, str(tmp_path / "pretrained"))
    for key, value in source.resnet.state_dict().items():
        assert torch.equal(value, target.resnet.state_dict()[key]), key
    other = ResNetTrunk(resnet_config("resnet18", **{**TINY, "hidden_sizes": [8, 16, 16, 64]}))
    with pytest.raises(ValueError, match="shape_mismatch"):
        load_tower_weights(other, str(tmp_path / "pretrained"))
