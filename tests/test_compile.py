"""torch.compile: the AMFMN, GaLR and CMPAGL forwards trace as one graph (no graph break), and the
input checks still fire inside the compiled graph."""

import pytest
import torch
from helpers import load_script
from tiny_methods import images, tiny_methods

graph_breaks = load_script("graph_breaks.py").graph_breaks


@pytest.fixture(scope="module")
def methods():
    return tiny_methods()


def break_count(function, *args) -> int:
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(function)(*args)
    return explanation.graph_break_count


def test_the_former_graph_breaks_are_gone(methods):
    """The parts that broke the graph before (skip-thought id checks and `.item()` step count,
    the attention-mask `torch.equal`, CMPAGL's `nonzero` re-rank and its negative-sampling check),
    traced alone: fast enough for the default run (the whole forwards: the slow test below)."""
    from rs_retrieval.models.cmpagl.modeling_cmpagl import sample_itm_negatives

    model, processor, texts, _ = methods["amfmn"]
    text = processor.text_inputs(texts)
    assert break_count(model.get_text_features, text["input_ids"], text["attention_mask"]) == 0
    model, processor, texts, _ = methods["cmpagl"]
    with torch.no_grad():
        image_cache = model.encode_images(**processor(images=images(processor.image_processor.size)))
        text_cache = model.encode_texts(**processor.text_inputs(texts))
    assert break_count(model.score, image_cache, text_cache) == 0
    similarity = torch.randn(4, 4)
    assert break_count(sample_itm_negatives, similarity, torch.tensor([0, 0, 1, 2])) == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["amfmn", "galr", "cmpagl"])
def test_forward_has_no_graph_break(methods, name):
    model, processor, texts, extra = methods[name]
    batch = dict(processor(images=images(processor.image_processor.size), text=texts, **extra))
    for train in (False, True):
        graphs, breaks, reasons = graph_breaks(model, batch, train)
        assert (graphs, breaks) == (1, 0), (name, train, reasons)
    model.eval()


def test_checks_still_raise_eager_and_compiled(methods):
    model, processor, texts, _ = methods["amfmn"]
    ids = processor.text_inputs(texts)["input_ids"]
    bad_range, bad_padding = ids.clone(), ids.clone()
    bad_range[0, 0] = model.config.vocab_size
    bad_padding[0, 0] = 0
    compiled = torch.compile(model.get_text_features, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(ids), model.get_text_features(ids))
    for bad, message in ((bad_range, r"input_ids must lie in \[0, 12\)"), (bad_padding, "right-padded with id 0")):
        with pytest.raises(ValueError, match=message):
            model.get_text_features(bad)
        with pytest.raises(RuntimeError, match=message):
            compiled(bad)
    with pytest.raises(ValueError, match=r"got range \[0, 12\]"):  # eager errors keep the offending values
        model.get_text_features(bad_range)
