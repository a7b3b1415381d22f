"""Converter tests: official-layout state_dicts are written from the reference code's key tables
(docs/methods/amfmn.md#reference-code-and-converter) with random values, converted, and every tensor is checked where
it must land."""

import json
import re

import numpy as np
import pytest
import torch
from tiny_methods import tiny_config
from torch.nn import functional as F
from transformers import AutoModel, AutoProcessor

import rs_retrieval.models  # noqa: F401  (registers the Auto classes)
from rs_retrieval.convert import CheckpointConversionError, convert_checkpoint
from rs_retrieval.convert.common import save_pretrained_atomic, strip_prefix, tensor_shape, torchvision_resnet_key
from rs_retrieval.models import UnknownMethodError
from rs_retrieval.models.amfmn import AMFMNModel
from rs_retrieval.models.amfmn_family.skipthought import SkipThoughtEncoder
from rs_retrieval.models.amfmn_family.skipthought_weights import load_skipthought_into, skipthought_state_dict
from rs_retrieval.models.amfmn_family.tokenization_word import save_vocab
from rs_retrieval.models.galr import GaLRModel

# Tiny but official-shaped: ResNet-18 block layout (2 blocks per stage), small widths.
WIDTHS, STEM = [4, 6, 8, 10], 4
E, H, D, V = 6, 7, 12, 9  # word dim, GRU hidden, embed dim, vocabulary words (+1 padding)
OVERRIDES = {"backbone_hidden_sizes": WIDTHS, "backbone_embedding_size": STEM}


def resnet18_state(prefix, generator):
    state = {}

    def conv(name, out_ch, in_ch, k):
        state[f"{prefix}{name}.weight"] = torch.randn(out_ch, in_ch, k, k, generator=generator)

    def bn(name, ch):
        state.update(
            {
                f"{prefix}{name}.weight": torch.rand(ch, generator=generator) + 0.5,
                f"{prefix}{name}.bias": torch.randn(ch, generator=generator),
                f"{prefix}{name}.running_mean": torch.randn(ch, generator=generator),
                f"{prefix}{name}.running_var": torch.rand(ch, generator=generator) + 0.5,
                f"{prefix}{name}.num_batches_tracked": torch.tensor(7),
            }
        )

    conv("conv1", STEM, 3, 7)
    bn("bn1", STEM)
    in_ch = STEM
    for s, width in enumerate(WIDTHS, start=1):
        for b in range(2):
            conv(f"layer{s}.{b}.conv1", width, in_ch if b == 0 else width, 3)
            bn(f"layer{s}.{b}.bn1", width)
            conv(f"layer{s}.{b}.conv2", width, width, 3)
            bn(f"layer{s}.{b}.bn2", width)
            if b == 0 and s > 1:
                conv(f"layer{s}.{b}.downsample.0", width, in_ch, 1)
                bn(f"layer{s}.{b}.downsample.1", width)
        in_ch = width
    state[f"{prefix}fc.weight"] = torch.randn(1000, WIDTHS[-1], generator=generator)
    state[f"{prefix}fc.bias"] = torch.randn(1000, generator=generator)
    return state


def official_state(method="amfmn", att_type="soft_att", image_size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g)
    side = image_size // 16
    state = resnet18_state("extract_feature.resnet.", g)
    state.update(
        {
            "extract_feature.linear.weight": r(D, WIDTHS[-1]),
            "extract_feature.linear.bias": r(D),
            "mvsa.LF_conv.weight": r(3, WIDTHS[0] + WIDTHS[1], 3, 3),
            "mvsa.LF_conv.bias": r(3),
            "mvsa.HF_conv.weight": r(3, WIDTHS[2] + WIDTHS[3], 1, 1),
            "mvsa.HF_conv.bias": r(3),
            "mvsa.conv1x1_1.weight": r(1, 6, 1, 1),
            "mvsa.conv1x1_1.bias": r(1),
            "mvsa.conv1x1_2.weight": r(1, 6, 1, 1),
            "mvsa.conv1x1_2.bias": r(1),
            "mvsa.solo_attention.weight": r(D, side * side),
            "mvsa.solo_attention.bias": r(D),
            "text_feature.seq2vec.embedding.weight": r(V + 1, E),
            "text_feature.to_out.weight": r(D, H),
            "text_feature.to_out.bias": r(D),
        }
    )
    for gate in "rin":
        state[f"text_feature.seq2vec.rnn.gru_cell.weight_i{gate}.weight"] = r(H, E)
        state[f"text_feature.seq2vec.rnn.gru_cell.weight_i{gate}.bias"] = r(H)
        state[f"text_feature.seq2vec.rnn.gru_cell.weight_h{gate}.weight"] = r(H, H)
    if method == "amfmn":
        heads = {
            "soft_att": [("cross_attention.0", D)],
            "fusion_att": [("cross_attention_fc1.0", 2 * D), ("cross_attention_fc2.0", 2 * D)],
            "similarity_att": [("fc_visual.0", D), ("fc_text.0", D)],
        }[att_type]
        for name, fan_in in heads:
            state[f"cross_attention_s.{name}.weight"], state[f"cross_attention_s.{name}.bias"] = r(D, fan_in), r(D)
        state["vgmf_gate.gate.weight"], state["vgmf_gate.gate.bias"] = r(D, 2 * D), r(D)
        return state
    nodes, node_dim, gcn = 5, 11, (6, 3, 4)
    state.update(
        {
            "local_feature.fc1.weight": r(gcn[0], node_dim),
            "local_feature.fc2.weight": r(gcn[1], gcn[0]),
            "local_feature.fc3.weight": r(gcn[2], gcn[1]),
            "local_feature.out.weight": r(D, nodes * gcn[2]),
            "local_feature.out.bias": r(D),
            "fusion.dynamic_weight.0.weight": r(8, D),
            "fusion.dynamic_weight.0.bias": r(8),
            "fusion.dynamic_weight.3.weight": r(2, 8),
            "fusion.dynamic_weight.3.bias": r(2),
        }
    )
    attention = lambda p: {
        f"{p}.linear_{n}.{t}": r(D, D) if t == "weight" else r(D) for n in "vkqm" for t in ("weight", "bias")
    }
    for block, attns, norms in (
        ("g2g_SA", ["mhatt"], 2),
        ("l2l_SA", ["mhatt"], 2),
        ("g2l_SGA", ["mhatt1", "mhatt2"], 3),
        ("l2g_SGA", ["mhatt1", "mhatt2"], 3),
    ):
        for a in attns:
            state.update(
                {k.replace("linear_m.", "linear_merge."): v for k, v in attention(f"fusion.{block}.{a}").items()}
            )
        state.update(
            {
                f"fusion.{block}.ffn.mlp.fc.linear.weight": r(2 * D, D),
                f"fusion.{block}.ffn.mlp.fc.linear.bias": r(2 * D),
                f"fusion.{block}.ffn.mlp.linear.weight": r(D, 2 * D),
                f"fusion.{block}.ffn.mlp.linear.bias": r(D),
            }
        )
        for n in range(1, norms + 1):
            state[f"fusion.{block}.norm{n}.a_2"], state[f"fusion.{block}.norm{n}.b_2"] = r(D), r(D)
    return state


def spec_key(official):
    """Where an official key must land (the layout our converter writes), or None if dropped."""
    m = re.fullmatch(r"extract_feature\.resnet\.(.+)", official)
    if not m:
        return None if official.startswith("vgmf_gate.") else official
    key, to = m.group(1), "extract_feature.backbone.resnet."
    kind = lambda c: "convolution" if c.startswith("conv") or c == "0" else "normalization"
    if key.startswith("fc."):
        return None
    if s := re.fullmatch(r"(conv1|bn1)\.(.+)", key):
        return f"{to}embedder.embedder.{kind(s[1])}.{s[2]}"
    if s := re.fullmatch(r"layer(\d)\.(\d)\.(conv|bn)(\d)\.(.+)", key):
        return f"{to}encoder.stages.{int(s[1]) - 1}.layers.{s[2]}.layer.{int(s[4]) - 1}.{kind(s[3])}.{s[5]}"
    s = re.fullmatch(r"layer(\d)\.(\d)\.downsample\.([01])\.(.+)", key)
    return f"{to}encoder.stages.{int(s[1]) - 1}.layers.{s[2]}.shortcut.{kind(s[3])}.{s[4]}"


def reference_resnet18(state, x, prefix="extract_feature.resnet."):
    """torchvision ResNet-18 forward (eval mode) on official weights, written with F.* (test only)."""
    w = lambda name: state[prefix + name]
    bn = lambda t, n: F.batch_norm(
        t, w(f"{n}.running_mean"), w(f"{n}.running_var"), w(f"{n}.weight"), w(f"{n}.bias"), eps=1e-5
    )
    x = F.max_pool2d(F.relu(bn(F.conv2d(x, w("conv1.weight"), stride=2, padding=3), "bn1")), 3, 2, 1)
    for s in range(1, 5):
        for b in range(2):
            p, stride = f"layer{s}.{b}", 2 if (b == 0 and s > 1) else 1
            out = F.relu(bn(F.conv2d(x, w(f"{p}.conv1.weight"), stride=stride, padding=1), f"{p}.bn1"))
            out = bn(F.conv2d(out, w(f"{p}.conv2.weight"), padding=1), f"{p}.bn2")
            shortcut = (
                bn(F.conv2d(x, w(f"{p}.downsample.0.weight"), stride=stride), f"{p}.downsample.1")
                if f"{prefix}{p}.downsample.0.weight" in state
                else x
            )
            x = F.relu(out + shortcut)
    return x


@pytest.fixture
def vocab_file(tmp_path):
    return save_vocab({f"w{i}": i for i in range(1, V)} | {"<unk>": V}, tmp_path / "vocab.json")


def _save(obj, path):
    torch.save(obj, path)
    return path


def check_landed(state, model):
    ours = model.state_dict()
    landed = set()
    for key, value in state.items():
        target = spec_key(key)
        if target is not None:
            assert torch.equal(ours[target], value.to(ours[target].dtype)), key
            landed.add(target)
    assert landed == set(ours)  # every model tensor came from the checkpoint


@pytest.mark.parametrize("att_type", ["soft_att", "fusion_att", "similarity_att"])
def test_amfmn_wrapper_checkpoint_converts_every_tensor(tmp_path, vocab_file, att_type):
    state = official_state("amfmn", att_type)
    wrapper = {
        "epoch": 3,
        "arch": "baseline",
        "model": state,
        "best_rsum": 12.5,
        "options": {"model": {"name": "AMFMN"}},
        "Eiters": 10,
    }
    path = _save(wrapper, tmp_path / "AMFMN_best.pth.tar")
    out = convert_checkpoint(
        path, "amfmn", vocab_path=vocab_file, out_dir=tmp_path / "out", config_overrides=OVERRIDES
    )
    model = AutoModel.from_pretrained(out).eval()
    assert isinstance(model, AMFMNModel) and model.config.att_type == att_type and model.config.image_size == 64
    assert (
        model.config.vocab_size,
        model.config.word_embed_dim,
        model.config.text_hidden_dim,
        model.config.embed_dim,
    ) == (V + 1, E, H, D)
    check_landed(state, model)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            model.extract_feature.backbone(pixels)[-1], reference_resnet18(state, pixels), rtol=1e-4, atol=1e-4
        )
    processor = AutoProcessor.from_pretrained(out)
    assert processor.tokenizer.vocab_size == V + 1 and processor.image_processor.size == 64
    assert processor(text=["w3 w1 unknown"])["input_ids"].tolist() == [[3, 1, V]]


def test_galr_bare_state_dict_converts_every_tensor(tmp_path, vocab_file):
    state = official_state("galr")
    path = _save(state, tmp_path / "GaLR_best.pth")
    out = convert_checkpoint(
        path, "galr", vocab_path=vocab_file, out_dir=tmp_path / "out", config_overrides={**OVERRIDES, "mca_heads": 3}
    )
    model = AutoModel.from_pretrained(out).eval()
    assert isinstance(model, GaLRModel)
    c = model.config
    assert (c.num_nodes, c.node_dim, c.gcn_dims, c.mca_hidden, c.mca_ff, c.dynamic_fusion_dim, c.mca_heads) == (
        5,
        11,
        [6, 3, 4],
        D,
        2 * D,
        8,
        3,
    )
    check_landed(state, model)


def test_conversion_refuses_layout_mismatches(tmp_path, vocab_file):
    def attempt(state, method="amfmn", **kwargs):
        path = _save(state, tmp_path / "ckpt.pth")
        overrides = {**OVERRIDES, "mca_heads": 3} if method == "galr" else OVERRIDES
        return convert_checkpoint(
            path,
            method,
            vocab_path=kwargs.pop("vocab", vocab_file),
            out_dir=tmp_path / "out",
            config_overrides=overrides,
            **kwargs,
        )

    with pytest.raises(CheckpointConversionError, match="unexpected.*mvsa.extra"):
        attempt({**official_state(), "mvsa.extra.weight": torch.zeros(1)})
    with pytest.raises(CheckpointConversionError, match="unexpected.*no conversion rule.*classifier.weight"):
        attempt({**official_state(), "classifier.weight": torch.zeros(1)})
    missing = official_state()
    del missing["extract_feature.resnet.layer3.1.bn2.running_var"]
    with pytest.raises(
        CheckpointConversionError, match=r"missing.*stages\.2\.layers\.1\.layer\.1\.normalization\.running_var"
    ):
        attempt(missing)
    wrong = official_state()
    wrong["mvsa.HF_conv.bias"] = torch.zeros(4)
    with pytest.raises(CheckpointConversionError, match=r"shape mismatch.*mvsa.HF_conv.bias \(4,\) vs \(3,\)"):
        attempt(wrong)
    with pytest.raises(CheckpointConversionError, match="vgmf_gate"):
        attempt({**official_state("galr"), "vgmf_gate.gate.weight": torch.zeros(D, 2 * D)}, method="galr")
    with pytest.raises(
        CheckpointConversionError, match=r"ckpt.pth: missing key 'mvsa.LF_conv.weight'"
    ):  # read for the config
        attempt({k: v for k, v in official_state().items() if k != "mvsa.LF_conv.weight"})
    with pytest.raises(CheckpointConversionError, match="exactly one attention type"):
        attempt({k: v for k, v in official_state().items() if not k.startswith("cross_attention_s")})
    other_vocab = save_vocab({"a": 1, "<unk>": 2}, tmp_path / "small.json")
    with pytest.raises(CheckpointConversionError, match="2 words.*10 rows"):
        attempt(official_state(), vocab=other_vocab)
    with pytest.raises(ValueError, match="unknown retrieval method 'msa9'"):
        convert_checkpoint(tmp_path / "ckpt.pth", "msa9", out_dir=tmp_path / "x")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_pickled_wrappers_need_allow_pickle_and_outputs_are_atomic(tmp_path, vocab_file):
    wrapper = {"model": official_state(), "best_rsum": np.float64(30.1), "epoch": 1}
    path = _save(wrapper, tmp_path / "ckpt.pth.tar")
    with pytest.raises(CheckpointConversionError, match="allow_pickle"):
        convert_checkpoint(path, "amfmn", vocab_path=vocab_file, out_dir=tmp_path / "out", config_overrides=OVERRIDES)
    out = convert_checkpoint(
        path, "amfmn", vocab_path=vocab_file, out_dir=tmp_path / "out", config_overrides=OVERRIDES, allow_pickle=True
    )
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_checkpoint(
            path, "amfmn", vocab_path=vocab_file, out_dir=out, config_overrides=OVERRIDES, allow_pickle=True
        )
    (tmp_path / "out" / "stale.txt").write_text("old")
    convert_checkpoint(
        path,
        "amfmn",
        vocab_path=vocab_file,
        out_dir=out,
        config_overrides=OVERRIDES,
        allow_pickle=True,
        overwrite=True,
    )
    assert not (tmp_path / "out" / "stale.txt").exists() and (tmp_path / "out" / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging leftovers

    class Broken:
        def save_pretrained(self, directory):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_pretrained_atomic(out, Broken(), overwrite=True)
    assert (tmp_path / "out" / "model.safetensors").is_file()  # previous output kept


def test_script_dispatches_on_method_and_registry_is_extensible(tmp_path, vocab_file):
    from helpers import load_script

    script = load_script("convert_official_checkpoint.py")
    path = _save(official_state(), tmp_path / "ckpt.pth")
    args = ["--method", "amfmn", "--checkpoint", str(path), "--vocab", str(vocab_file), "--out", str(tmp_path / "out")]
    overrides = [
        "--set",
        f"backbone_hidden_sizes={json.dumps(WIDTHS)}",
        "--set",
        f"backbone_embedding_size={STEM}",
        "--set",
        "margin=0.3",
    ]
    assert script.main(args + overrides) == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["margin"] == 0.3
    assert script.main(args + overrides) == 2  # exists, no --overwrite: one-line error, exit status 2 (user error)

    # converters come from the method registry (a toy method's converter: tests/test_toy_method.py)
    with pytest.raises(
        UnknownMethodError,
        match=r"no checkpoint converter for method 'cmpagl'; methods with one: \['amfmn', .*'galr', 'msa'",
    ):
        convert_checkpoint("p", "cmpagl", out_dir="o")
    with pytest.raises(UnknownMethodError, match="unknown retrieval method 'nope'"):
        convert_checkpoint("p", "nope", out_dir="o")


def test_key_helpers():
    assert (
        torchvision_resnet_key("layer4.1.bn2.num_batches_tracked")
        == "encoder.stages.3.layers.1.layer.1.normalization.num_batches_tracked"
    )
    assert (
        torchvision_resnet_key("layer2.0.conv3.weight") == "encoder.stages.1.layers.0.layer.2.convolution.weight"
    )  # bottleneck
    assert torchvision_resnet_key("fc.bias") is None
    with pytest.raises(CheckpointConversionError, match="avgpool"):
        torchvision_resnet_key("avgpool.weight")
    assert strip_prefix({"module.a": 1, "module.b": 2}, "module.") == {"a": 1, "b": 2}
    assert strip_prefix({"module.a": 1, "b": 2}, "module.") == {"module.a": 1, "b": 2}
    assert tensor_shape({"w": torch.zeros(3, 4)}, "w") == (3, 4)
    with pytest.raises(CheckpointConversionError, match=r"ckpt.pth: missing key 'v'"):
        tensor_shape({"w": torch.zeros(3, 4)}, "v", "ckpt.pth")


# --- skip-thought uni-skip files ------------------------------------------------------------------


def write_uniskip(folder, embed=5, hidden=4, words=("UNK", "plane", "ship", "Roof"), pickled=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    params = {
        "encoder_W": rng.normal(size=(embed, 2 * hidden)),
        "encoder_b": rng.normal(size=2 * hidden),
        "encoder_U": rng.normal(size=(hidden, 2 * hidden)),
        "encoder_Wx": rng.normal(size=(embed, hidden)),
        "encoder_bx": rng.normal(size=hidden),
        "encoder_Ux": rng.normal(size=(hidden, hidden)),
        "Wemb": rng.normal(size=(3, embed)),
    }
    np.savez(folder / "uni_skip.npz", **{k: v.astype(np.float32) for k, v in params.items()})
    table = rng.normal(size=(len(words), embed)).astype(np.float32)
    if pickled:
        rows = np.empty(len(words), dtype=object)
        rows[:] = list(table)
        np.save(folder / "utable.npy", rows, allow_pickle=True)
    else:
        np.save(folder / "utable.npy", table)
    (folder / "dictionary.txt").write_text("\n".join(words) + "\n")
    return params, table


def theano_gru_last(params, embeddings):
    """The skip-thought Theano GRU (reset/update halves, h = u * h + (1 - u) * candidate), numpy."""
    hidden = params["encoder_Ux"].shape[0]
    h = np.zeros(hidden)
    for x in embeddings:
        preact = h @ params["encoder_U"] + x @ params["encoder_W"] + params["encoder_b"]
        reset, update = 1 / (1 + np.exp(-preact[:hidden])), 1 / (1 + np.exp(-preact[hidden:]))
        candidate = np.tanh((h @ params["encoder_Ux"]) * reset + x @ params["encoder_Wx"] + params["encoder_bx"])
        h = update * h + (1 - update) * candidate
    return h


def test_skipthought_files_initialise_the_text_encoder(tmp_path):
    params, table = write_uniskip(tmp_path / "st")
    vocab = {"plane": 1, "roof": 2, "ship": 3, "<unk>": 4}  # "roof" is not in the case-sensitive dictionary
    encoder = SkipThoughtEncoder(vocab_size=5, word_embed_dim=5, hidden_dim=4, dropout=0.25).eval()
    load_skipthought_into(encoder, tmp_path / "st", vocab)
    embedding = encoder.embedding.weight.detach().numpy()
    np.testing.assert_array_equal(embedding[0], 0)
    np.testing.assert_allclose(embedding[[1, 2, 3, 4]], table[[1, 0, 2, 0]])  # roof and <unk> -> UNK row
    ids = torch.tensor([[1, 3, 2, 0], [3, 0, 0, 0]])
    with torch.no_grad():
        out = encoder(ids).numpy()
    for row, seq in enumerate(([1, 3, 2], [3])):
        np.testing.assert_allclose(out[row], theano_gru_last(params, embedding[seq]), rtol=1e-5, atol=1e-5)


def test_skipthought_loader_checks_files_and_pickles(tmp_path):
    write_uniskip(tmp_path / "st", pickled=True)
    vocab = {"plane": 1, "<unk>": 2}
    with pytest.raises(CheckpointConversionError, match="allow_pickle"):
        skipthought_state_dict(tmp_path / "st", vocab)
    assert skipthought_state_dict(tmp_path / "st", vocab, allow_pickle=True)["embedding.weight"].shape == (3, 5)
    with pytest.raises(CheckpointConversionError, match="shape mismatch"):
        load_skipthought_into(SkipThoughtEncoder(3, 5, 6, 0.0), tmp_path / "st", vocab, allow_pickle=True)
    (tmp_path / "st" / "dictionary.txt").write_text("plane\nship\nRoof\nx\n")
    with pytest.raises(CheckpointConversionError, match="'UNK'"):
        skipthought_state_dict(tmp_path / "st", vocab, allow_pickle=True)
    (tmp_path / "st" / "utable.npy").unlink()
    with pytest.raises(FileNotFoundError, match="utable.npy"):
        skipthought_state_dict(tmp_path / "st", vocab)


def test_from_pretrained_towers_loads_resnet_and_skipthought(tmp_path):
    write_uniskip(tmp_path / "st", embed=8, hidden=10)
    config = tiny_config("amfmn", vocab_size=5)
    donor = AMFMNModel(config)
    donor.extract_feature.backbone.resnet.save_pretrained(tmp_path / "resnet")
    vocab = {"plane": 1, "ship": 2, "tank": 3, "<unk>": 4}
    model = AMFMNModel.from_pretrained_towers(
        config,
        vision_model_name_or_path=str(tmp_path / "resnet"),
        text_model_name_or_path=tmp_path / "st",
        vocab=vocab,
    )
    for key, value in donor.extract_feature.backbone.resnet.state_dict().items():
        assert torch.equal(model.extract_feature.backbone.resnet.state_dict()[key], value)
    expected = skipthought_state_dict(tmp_path / "st", vocab)
    for key, value in expected.items():
        assert torch.equal(model.text_feature.seq2vec.state_dict()[key], value)
    with pytest.raises(ValueError, match="vocab"):
        AMFMNModel.from_pretrained_towers(config, text_model_name_or_path=tmp_path / "st")
