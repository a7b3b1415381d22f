"""CLIP-family training: the InfoNCE loss by hand, its cross-process gathering (2 gloo processes
equal one process on the whole batch), 1-D parameters without weight decay, the clip_synth recipe
through the trainer, towers from a saved folder, and the retrieval contract on CLIP models."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from clip_helpers import TINY_CLIP, random_images, tiny_clip
from helpers import (
    ACCELERATE_TWO_CPU_RANKS,
    fresh_accelerate_state,  # noqa: F401  (autouse fixture)
)
from PIL import Image
from transformers import CLIPConfig, CLIPModel, CLIPProcessor

from rs_retrieval.cards import write_model_card
from rs_retrieval.data import load_dataset
from rs_retrieval.models import load_retrieval_model, load_retrieval_processor
from rs_retrieval.models.clip import CLIPRetrievalModel, as_retrieval_model
from rs_retrieval.models.common.losses import MAX_LOGIT_SCALE, clip_contrastive_loss
from rs_retrieval.training import Trainer, load_recipe
from rs_retrieval.training.optim import parameter_groups
from rs_retrieval.training.recipe import RecipeError
from rs_retrieval.training.run_log import read_log

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_clip_loss_by_hand():
    image = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    text = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    scale = torch.tensor(math.log(10.0))
    loss, terms = clip_contrastive_loss(image, text, scale)
    cos = F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()  # [[1/sqrt2, 0], [1/sqrt2, 1]]
    logits = 10 * cos
    i2t = -(torch.log_softmax(logits, 1)[0, 0] + torch.log_softmax(logits, 1)[1, 1]) / 2
    t2i = -(torch.log_softmax(logits.t(), 1)[0, 0] + torch.log_softmax(logits.t(), 1)[1, 1]) / 2
    assert (
        torch.allclose(loss, (i2t + t2i) / 2)
        and torch.allclose(terms["i2t"], i2t)
        and torch.allclose(terms["logit_scale"], torch.tensor(10.0))
    )
    # a temperature beyond open_clip's clamp counts as 100 and gets no gradient
    big = torch.tensor(10.0, requires_grad=True)
    loss, terms = clip_contrastive_loss(image, text, big)
    loss.backward()
    assert terms["logit_scale"] == pytest.approx(100.0) and big.grad == 0
    assert MAX_LOGIT_SCALE == pytest.approx(math.log(100))


def test_same_image_texts_are_not_negatives():
    torch.manual_seed(0)
    image, text = torch.randn(4, 8), torch.randn(4, 8)
    ids = torch.tensor([0, 0, 1, 2])  # rows 0 and 1: two captions of one image
    loss, _ = clip_contrastive_loss(image, text, torch.tensor(2.0), ids)
    logits = math.exp(2.0) * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()
    mask = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    expected = (
        F.cross_entropy(logits.masked_fill(mask, -math.inf), torch.arange(4))
        + F.cross_entropy(logits.t().masked_fill(mask, -math.inf), torch.arange(4))
    ) / 2
    assert torch.allclose(loss, expected)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gathered_worker(rank: int, world: int, port: int, image, text, ids, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    rows = slice(rank * len(image) // world, (rank + 1) * len(image) // world)
    local_image = image[rows].clone().requires_grad_(True)
    local_text = text[rows].clone().requires_grad_(True)
    scale = torch.tensor(2.0, requires_grad=True)
    loss, _ = clip_contrastive_loss(local_image, local_text, scale, ids[rows])
    loss.backward()
    torch.save(
        {
            "loss": loss.detach(),
            "image_grad": local_image.grad,
            "text_grad": local_text.grad,
            "scale_grad": scale.grad,
        },
        f"{out_dir}/{rank}.pt",
    )
    dist.destroy_process_group()


def test_loss_gathered_across_two_processes_equals_the_whole_batch(tmp_path):
    torch.manual_seed(0)
    image, text = torch.randn(8, 6), torch.randn(8, 6)
    ids = torch.tensor([0, 1, 2, 2, 3, 4, 5, 0])  # same-image pairs across the two halves too
    mp.spawn(_gathered_worker, args=(2, _free_port(), image, text, ids, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    full_image, full_text, scale = (
        image.clone().requires_grad_(True),
        text.clone().requires_grad_(True),
        torch.tensor(2.0, requires_grad=True),
    )
    full_loss, _ = clip_contrastive_loss(full_image, full_text, scale, ids)
    full_loss.backward()
    # the mean of the per-process losses is the loss of the global batch ...
    assert torch.allclose((ranks[0]["loss"] + ranks[1]["loss"]) / 2, full_loss, atol=1e-6)
    # ... and after DDP's gradient averaging each process's features get the global gradient
    # (all_gather's backward sums the contributions of both processes: x world size before averaging)
    for r, part in enumerate(ranks):
        rows = slice(4 * r, 4 * r + 4)
        assert torch.allclose(part["image_grad"] / 2, full_image.grad[rows], atol=1e-6)
        assert torch.allclose(part["text_grad"] / 2, full_text.grad[rows], atol=1e-6)
    assert torch.allclose((ranks[0]["scale_grad"] + ranks[1]["scale_grad"]) / 2, scale.grad, atol=1e-6)


def test_contract_forward_trains_and_loss_decreases():
    model, processor = tiny_clip(seed=1)
    wrapped = as_retrieval_model(model)
    images = random_images(6, seed=2)
    captions = ["an airport", "a harbour with ships", "green fields", "a dense forest", "a parking lot", "a beach"]
    inputs = {**load_pixels(processor, images), **tokens(processor, captions)}
    optimizer = torch.optim.AdamW(wrapped.parameters(), lr=3e-3)
    wrapped.train()
    losses = []
    for _ in range(25):
        output = wrapped(**inputs, return_loss=True, image_ids=torch.arange(6))
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        losses.append(output.loss.item())
    assert set(output.loss_terms) == {"i2t", "t2i", "logit_scale"}
    assert losses[-1] < 0.5 * losses[0]
    assert output.logits_per_image.shape == (6, 6) and torch.allclose(
        output.logits_per_text, output.logits_per_image.t()
    )


def load_pixels(processor, images):
    return {"pixel_values": processor.image_processor(images, return_tensors="pt")["pixel_values"]}


def tokens(processor, captions):
    encoded = processor.tokenizer(captions, padding=True, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def test_plain_and_retrieval_views_share_weights_and_save_as_clip(tmp_path):
    model, processor = tiny_clip(seed=2)
    plain = CLIPModel(model.config)
    view = as_retrieval_model(plain)
    assert isinstance(view, CLIPRetrievalModel) and view.vision_model is plain.vision_model
    with torch.no_grad():
        view.logit_scale.fill_(1.5)
    assert plain.logit_scale.item() == 1.5
    view.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["architectures"] == ["CLIPModel"]
    assert type(load_retrieval_model(tmp_path / "m")) is CLIPRetrievalModel
    assert isinstance(CLIPProcessor.from_pretrained(tmp_path / "m"), CLIPProcessor)
    wrapped = load_retrieval_processor(tmp_path / "m")
    assert wrapped.text_padding == "longest" and wrapped.tokenizer is not None


def test_training_view_rotates_and_crops():
    import random

    from rs_retrieval.models.clip.processing_clip import random_view

    image = random_images(1, size=(40, 60))[0]
    views = [random_view(image, (0.9, 1.0), random.Random(seed)) for seed in range(12)]
    turned = {view.size for view in views}
    assert turned == {s for s in turned if s[0] * s[1] >= 0.9 * 40 * 60 - 200}  # 90-100 % of the area (rounding)
    assert any(w < h for w, h in turned) and any(w > h for w, h in turned)  # some views are turned by 90 degrees
    whole = [random_view(image, (1.0, 1.0), random.Random(seed)) for seed in range(12)]
    assert {view.tobytes() for view in whole} <= {
        image.transpose(t).tobytes() if t else image.tobytes() for t in (None, 2, 3, 4)
    }


def test_no_decay_for_one_dimensional_parameters():
    recipe = load_recipe(CONFIGS / "clip_synth.yaml")
    model = CLIPRetrievalModel(CLIPConfig(**TINY_CLIP))
    groups = {g["name"]: g for g in parameter_groups(model, recipe.training)}
    assert set(groups) == {"default", "default/no_decay"} and groups["default/no_decay"]["weight_decay"] == 0.0
    assert all(p.dim() < 2 for p in groups["default/no_decay"]["params"]) and any(
        p is model.logit_scale for p in groups["default/no_decay"]["params"]
    )
    assert all(p.dim() >= 2 for p in groups["default"]["params"]) and groups["default"]["weight_decay"] == 0.1


TINY_SYNTH = [
    "model.projection_dim=16",
    "model.text_config={hidden_size: 32, intermediate_size: 64, "
    "num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 77}",
    "model.vision_config={hidden_size: 32, intermediate_size: 64, "
    "num_hidden_layers: 1, num_attention_heads: 2, image_size: 32, patch_size: 8}",
    "data.options={image_size: 32, train_size: 8, val_size: 6, test_size: 0}",
    "training.batch_size=10",
    "training.max_steps=3",
    "training.eval_batch_size=6",
    "training.log_every_steps=1",
]


def test_clip_synth_recipe_trains_and_saves_a_plain_clip_folder(tmp_path):
    cache = tmp_path / "synth"
    load_dataset("rs_synth", cache_dir=cache, image_size=32, train_size=8, val_size=6, test_size=0)
    recipe = load_recipe(CONFIGS / "clip_synth.yaml", TINY_SYNTH + [f"data.cache_dir={cache}"])
    run = Trainer(recipe, run_dir=tmp_path / "run", on_finish=[write_model_card]).train()
    records = read_log(run / "log.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3] and all(math.isfinite(r["loss"]) for r in train)
    assert {"loss/i2t", "loss/t2i", "loss/logit_scale"} <= set(train[0]) and "lr/default/no_decay" in train[0]
    (evaluation,) = [r for r in records if r["kind"] == "eval"]
    assert 0 <= evaluation["mR"] <= 100
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["model_type"] == "clip" and config["architectures"] == ["CLIPModel"]
    assert isinstance(CLIPModel.from_pretrained(run / "model"), CLIPModel)
    assert isinstance(CLIPProcessor.from_pretrained(run / "model"), CLIPProcessor)
    card = (run / "model" / "README.md").read_text()
    assert "CLIPModel.from_pretrained" in card and "trust_remote_code" not in card


def test_towers_from_a_saved_folder_and_mismatch_refused(tmp_path):
    model, processor = tiny_clip(seed=7)
    model.save_pretrained(tmp_path / "start")
    fresh = CLIPRetrievalModel.from_pretrained_towers(model.config, vision_model_name_or_path=tmp_path / "start")
    assert torch.equal(
        fresh.vision_model.embeddings.patch_embedding.weight, model.vision_model.embeddings.patch_embedding.weight
    )
    assert not torch.equal(
        fresh.text_model.embeddings.token_embedding.weight, model.text_model.embeddings.token_embedding.weight
    )
    both = CLIPRetrievalModel.from_pretrained_towers(model.config, tmp_path / "start", tmp_path / "start")
    assert all(torch.equal(a, b) for a, b in zip(both.state_dict().values(), model.state_dict().values()))
    other = model.config.__class__(
        **{**TINY_CLIP, "vision_config": {**TINY_CLIP["vision_config"], "hidden_act": "gelu"}}
    )
    with pytest.raises(ValueError, match="hidden_act"):
        CLIPRetrievalModel.from_pretrained_towers(other, vision_model_name_or_path=tmp_path / "start")


def test_clip_recipe_refuses_train_captions_vocabulary():
    from rs_retrieval.training.vocab import vocabulary_from_captions

    with pytest.raises(RecipeError, match="clip_bpe"):
        vocabulary_from_captions("clip", ["a harbour"])


def test_search_and_rank_captions_with_a_clip_folder(tmp_path):
    from rs_retrieval import load_model_and_processor
    from rs_retrieval.search import rank_captions, search_images

    model, processor = tiny_clip(seed=11)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(random_images(5, seed=3)):
        image.save(folder / f"{i}.png")
    loaded, loaded_processor = load_model_and_processor(str(tmp_path / "model"))
    results = search_images(
        "a harbour with ships", folder, loaded, loaded_processor, top_k=None, cache_dir=tmp_path / "cache"
    )
    plain = CLIPModel.from_pretrained(tmp_path / "model").eval()
    paths = sorted(folder.glob("*.png"))
    inputs = processor(
        text=["a harbour with ships"],
        images=[Image.open(p).convert("RGB") for p in paths],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        cosine = plain(**inputs).logits_per_image[:, 0] / plain.logit_scale.exp()
    assert [p for p, _ in results] == [paths[i] for i in cosine.argsort(descending=True).tolist()]
    assert [s for _, s in results] == pytest.approx(sorted(cosine.tolist(), reverse=True), abs=1e-5)
    ranked = rank_captions(paths[0], ["a beach", "a forest", "an airport"], loaded, loaded_processor)
    assert len(ranked) == 3 and ranked[0][1] >= ranked[-1][1]


def test_siglip_models_follow_the_contract():
    from transformers import SiglipConfig, SiglipModel

    from rs_retrieval.models.clip import SiglipRetrievalModel

    torch.manual_seed(0)
    config = SiglipConfig(
        text_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            vocab_size=100,
            max_position_embeddings=16,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
    )
    plain = SiglipModel(config).eval()
    model = as_retrieval_model(plain)
    assert isinstance(model, SiglipRetrievalModel)
    pixels, ids = torch.randn(3, 3, 32, 32), torch.randint(0, 100, (4, 16))
    with torch.no_grad():
        scores = model.score(model.encode_images(pixels), model.encode_texts(ids))
        expected = (
            F.normalize(plain.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
            @ F.normalize(plain.get_text_features(input_ids=ids).pooler_output, dim=-1).t()
        )
    assert scores.shape == (3, 4) and torch.allclose(scores, expected, atol=1e-6)


@pytest.mark.slow
def test_two_processes_see_the_global_batch(tmp_path):
    """`accelerate launch --multi_gpu` with two CPU ranks: with gathered negatives every rank scores
    its 5 pairs against all 10, so the loss matches the single process on the same 10-pair batches
    (up to augmentation, which each rank draws for its own rows). Without gathering it would start
    near ln 5 instead of ln 10 (30 % lower); `test_loss_gathered_across_two_processes_...` checks
    the exact equality."""
    import subprocess
    import sys

    import yaml

    cache = tmp_path / "synth"
    load_dataset("rs_synth", cache_dir=cache, image_size=32, train_size=8, val_size=6, test_size=0)
    recipe = load_recipe(CONFIGS / "clip_synth.yaml", TINY_SYNTH + [f"data.cache_dir={cache}", "training.max_steps=4"])
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict()))
    repo = CONFIGS.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    script = [str(repo / "scripts" / "train.py"), "--config", str(tmp_path / "recipe.yaml"), "--output-dir"]
    subprocess.run([sys.executable, *script, str(tmp_path / "one")], check=True, env=env, capture_output=True)
    launch = ACCELERATE_TWO_CPU_RANKS
    subprocess.run([*launch, *script, str(tmp_path / "two")], check=True, env=env, capture_output=True)
    one, two = ([r for r in read_log(tmp_path / d / "log.jsonl") if r["kind"] == "train"] for d in ("one", "two"))
    assert json.loads((tmp_path / "two" / "training_args.json").read_text())["num_processes"] == 2
    # the first steps, before the two runs' different augmentations move the weights apart
    assert [r["loss"] for r in two[:2]] == pytest.approx([r["loss"] for r in one[:2]], rel=0.05)
