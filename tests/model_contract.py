"""The retrieval-model contract as a test mixin (like transformers' `ModelTesterMixin`).

A test class mixes in `RetrievalModelTesterMixin` and provides a `case` fixture returning a `tiny_methods.TinyCase`;
every test then runs on that method: shapes, save/load and Auto round trips, the remote-code bundle, blockwise scoring,
a loss that decreases, a bf16 forward, a bf16-autocast training step and gradient checkpointing where the towers
support it.
"""

from __future__ import annotations

import ast
import json

import pytest
import torch
from transformers import AutoModel, AutoProcessor
from transformers.dynamic_module_utils import get_class_from_dynamic_module

from rs_retrieval import get_method
from rs_retrieval.hub.remote_code import bundle


def _package_imports(source: str) -> list[str]:
    """Absolute imports of `rs_retrieval` in a module's code."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [name for name in names if name.split(".")[0] == "rs_retrieval"]


def _logits(model, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits_per_image


class RetrievalModelTesterMixin:
    num_images = 3
    #: False for methods defined outside an importable package (a test module): their module
    #: also runs `register_method`, which the flat copy would repeat with the copied classes.
    bundles_remote_code = True

    def test_output_shapes_and_caches(self, case):
        model, processor = case.model(), case.processor()
        inputs = case.inputs(processor, self.num_images)
        with torch.no_grad():
            out = model(**inputs)
            image_cache = model.encode_images(
                **{k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
            )
            text_cache = model.encode_texts(inputs["input_ids"], inputs["attention_mask"])
        num_texts = len(case.texts)
        assert out.logits_per_image.shape == (self.num_images, num_texts)
        assert torch.equal(out.logits_per_text, out.logits_per_image.t())
        assert out.image_embeds.shape[0] == self.num_images and out.text_embeds.shape[0] == num_texts
        assert set(model.image_cache_keys) <= set(image_cache) and set(model.text_cache_keys) <= set(text_cache)
        with torch.no_grad():
            torch.testing.assert_close(model.score(image_cache, text_cache), out.logits_per_image)

    def test_save_and_auto_round_trip_give_identical_logits(self, case, tmp_path):
        model, processor = case.model(), case.processor()
        inputs = case.inputs(processor, self.num_images)
        model.save_pretrained(tmp_path)
        processor.save_pretrained(tmp_path)
        method = get_method(model.config.model_type)
        loaded, reprocessor = AutoModel.from_pretrained(tmp_path).eval(), AutoProcessor.from_pretrained(tmp_path)
        assert (type(loaded), type(reprocessor)) == (method.model_class, method.processor_class)
        assert type(reprocessor.image_processor) is method.image_processor_class
        assert isinstance(reprocessor.tokenizer, method.tokenizer_family.tokenizer_class)
        reinputs = case.inputs(reprocessor, self.num_images)
        assert all(torch.equal(inputs[k], reinputs[k]) for k in inputs)
        assert torch.equal(_logits(loaded, reinputs), _logits(model, inputs))

    def test_remote_code_bundle_loads_the_bundled_classes(self, case, tmp_path):
        if not self.bundles_remote_code:
            pytest.skip("method defined in a test module")
        model, processor = case.model(), case.processor()
        model.save_pretrained(tmp_path)
        processor.save_pretrained(tmp_path)
        auto_map = bundle(tmp_path, model, processor)
        assert set(auto_map) >= {"AutoConfig", "AutoModel", "AutoProcessor"}
        assert json.loads((tmp_path / "config.json").read_text())["auto_map"]["AutoModel"] == auto_map["AutoModel"]
        for module in tmp_path.glob("*.py"):  # the flat copy imports only its own files
            assert not _package_imports(module.read_text()), module.name
        remote_class = get_class_from_dynamic_module(auto_map["AutoModel"], tmp_path)
        assert not remote_class.__module__.startswith("rs_retrieval")
        remote = remote_class.from_pretrained(tmp_path).eval()
        inputs = case.inputs(processor, self.num_images)
        assert torch.equal(_logits(remote, inputs), _logits(model, inputs))

    def test_blockwise_scores_equal_the_full_matrix(self, case):
        model, processor = case.model(), case.processor()
        if not model.score_is_blockwise:
            pytest.skip(f"{type(model).__name__} scores the whole set at once (score_is_blockwise=False)")
        inputs = case.inputs(processor, self.num_images)
        with torch.no_grad():
            images = model.encode_images(
                **{k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
            )
            texts = model.encode_texts(inputs["input_ids"], inputs["attention_mask"])
            full = model.score(images, texts)
            blocks = torch.cat(
                [model.score({k: v[i : i + 1] for k, v in images.items()}, texts) for i in range(self.num_images)]
            )
        torch.testing.assert_close(blocks, full)

    def test_loss_decreases_on_a_toy_batch(self, case):
        model, processor = case.model(), case.processor()
        texts = (case.texts * 2)[:2]
        inputs = dict(processor(images=case.images(2), text=texts, **case.image_columns(2)))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        torch.manual_seed(0)
        losses = []
        for _ in range(8):
            loss = model(**inputs, return_loss=True, image_ids=torch.arange(2)).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0], losses

    def test_bf16_forward_matches_float32(self, case):
        model, processor = case.model(), case.processor()
        inputs = case.inputs(processor, self.num_images)
        reference = _logits(model, inputs)
        low = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in inputs.items()}
        logits = _logits(model.to(torch.bfloat16), low)
        assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
        torch.testing.assert_close(logits.float(), reference, atol=0.1, rtol=0.1)

    def test_bf16_autocast_training_step_follows_float32(self, case):
        """`training.mixed_precision: bf16` runs the step under CPU autocast: the backward must work
        (custom autograd functions see mixed dtypes) and the gradients point where fp32's do."""
        model, processor = case.model(), case.processor()
        inputs = case.inputs(processor, 2)
        model.train()
        for module in model.modules():  # batch statistics of 2 tiny maps (1x1 at the last stage)
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):  # are degenerate: rounding
                module.eval()  # decides the sign of their gradients, so they use running statistics

        def gradients(autocast: bool) -> torch.Tensor:
            model.zero_grad()
            torch.manual_seed(0)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = model(**inputs, return_loss=True, image_ids=torch.arange(2)).loss
            loss.backward()
            return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

        full, mixed = gradients(False), gradients(True)
        assert mixed.dtype == torch.float32 and torch.isfinite(mixed).all() and mixed.shape == full.shape
        cosine = torch.nn.functional.cosine_similarity(mixed, full, dim=0)
        assert cosine > 0.95, float(cosine)

    def test_gradient_checkpointing_keeps_the_gradients(self, case):
        model, processor = case.model(), case.processor()
        if not model.supports_gradient_checkpointing:
            with pytest.raises(ValueError, match="does not support activation checkpointing"):
                model.activation_checkpointing_enable()
            return
        inputs = case.inputs(processor, 2)
        model.train()

        def gradients():
            model.zero_grad()
            torch.manual_seed(0)
            model(**inputs, return_loss=True, image_ids=torch.arange(2)).loss.backward()
            return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

        plain = gradients()
        model.activation_checkpointing_enable()
        checkpointed = gradients()
        assert set(checkpointed) == set(plain)
        for name, grad in plain.items():
            torch.testing.assert_close(checkpointed[name], grad, msg=name)
