"""The `evaluate` metric module: self-contained (its own numpy ranks, equal to `retrieval_metrics`
on randomized matrices with ties for every protocol and the tie policies it allows, torch's tie
order restated without torch), loads offline from its folder,
and `rs-retrieval push metric` publishes a metric Space that `evaluate.load("org/name")` loads in a
process that cannot import rs_retrieval."""

import collections
import importlib.util
import inspect
import json
import re

import numpy as np
import pytest
import torch
from hub_server import FakeHub, client_env, run_client

from rs_retrieval.evaluation.choices import DEFAULT_TIE_POLICY, PROTOCOL_NAMES, TIE_POLICIES
from rs_retrieval.evaluation.hf_evaluate import METRIC_DIR, METRIC_NAME
from rs_retrieval.evaluation.metrics import retrieval_metrics
from rs_retrieval.evaluation.protocols import DEFAULT_PROTOCOL
from rs_retrieval.evaluation.protocols import PROTOCOLS as PROTOCOL_REGISTRY

evaluate = pytest.importorskip("evaluate")


def scores_with_ties(n_img=7, per_image=3, seed=0):
    """Scores rounded to one decimal (many ties), caption j of image i in column per_image * i + j."""
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random((n_img, n_img * per_image)), 1)
    references = [list(range(per_image * i, per_image * (i + 1))) for i in range(n_img)]
    return scores, references, np.repeat(np.arange(n_img), per_image)


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


@pytest.fixture(scope="module")
def script():
    """The metric script as a module of its own (what `evaluate.load` imports)."""
    spec = importlib.util.spec_from_file_location("metric_script", METRIC_DIR / f"{METRIC_NAME}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_case(seed):
    """Scores on a coarse grid (many exact ties), 1-4 captions per image, duplicate captions across
    images (also differing only in case and spaces) and duplicate, unsorted image keys. Odd seeds
    are larger (up to 160 captions), so torch's introsort and its topk heap select (k * 64 <= n) run."""
    rng = np.random.default_rng(seed)
    n_img = int(rng.integers(2, 9) if seed % 2 == 0 else rng.integers(10, 41))
    counts = rng.integers(1, 5, n_img)
    owner = np.repeat(np.arange(n_img), counts)
    rng.shuffle(owner)
    scores = rng.integers(0, 4, (n_img, len(owner))).astype(np.float64) / 4
    texts = [
        f"  A caption {t}" if t % 2 else f"a CAPTION   {t}"
        for t in rng.integers(0, max(5, len(owner) // 3), len(owner))
    ]
    image_keys = [f"img{k}.tif" for k in rng.integers(0, max(2, n_img - 2), n_img)]
    return scores, owner, texts, image_keys


def allowed_tie_policies(protocol):
    """None (the protocol's own) and every explicit choice `retrieval_metrics` accepts for it."""
    fixed = PROTOCOL_REGISTRY[protocol].tie_policy
    return [None, *(TIE_POLICIES if fixed is None else (fixed,))]


def test_the_script_is_self_contained_with_the_packages_options(script):
    source = (METRIC_DIR / f"{METRIC_NAME}.py").read_text()
    assert not re.search(r"^\s*(from|import) rs_retrieval", source, flags=re.MULTILINE)
    assert tuple(script.PROTOCOLS) == PROTOCOL_NAMES and set(script.TIE_POLICIES) == set(TIE_POLICIES)
    assert {name: own for name, (_, own) in script.PROTOCOLS.items()} == {
        name: p.tie_policy for name, p in PROTOCOL_REGISTRY.items()
    }
    assert script.DEFAULT_TIE_POLICY == DEFAULT_TIE_POLICY and script.DEFAULT_PROTOCOL == DEFAULT_PROTOCOL
    defaults = {
        f.__qualname__: inspect.signature(f).parameters["protocol"].default
        for f in (
            script.retrieval_ranks,
            script.retrieval_hits,
            script.retrieval_metrics,
            script.RsRetrievalRecall._compute,
        )
    }
    assert defaults == dict.fromkeys(defaults, DEFAULT_PROTOCOL)
    readme = " ".join((METRIC_DIR / "README.md").read_text().split())  # sentences, whatever the line breaks
    own = ", ".join(f"`{p.tie_policy}` for `{name}`" for name, p in PROTOCOL_REGISTRY.items() if p.tie_policy)
    assert (
        f"None means the protocol's own order: {own} (their code fixes "
        f"it, and they accept no other), else `{DEFAULT_TIE_POLICY}`." in readme
    )
    assert f"`skyscript`, default `{DEFAULT_PROTOCOL}`)" in readme and "pip install rs-retrieval" not in readme
    assert all(f"`{name}`" in readme for name in (*PROTOCOL_NAMES, *TIE_POLICIES))


@pytest.mark.parametrize("protocol, tie_policy", [(p, t) for p in PROTOCOL_NAMES for t in allowed_tie_policies(p)])
def test_script_equals_retrieval_metrics_on_random_cases_with_ties(script, protocol, tie_policy):
    for seed in range(16):
        scores, owner, texts, image_keys = random_case(seed)
        options = {"tie_policy": tie_policy, "protocol": protocol, "texts": texts, "image_keys": image_keys}
        ours = script.retrieval_metrics(scores, owner, ks=(1, 2, 5), **options)
        assert ours == retrieval_metrics(scores, owner, ks=(1, 2, 5), **options), (seed, protocol, tie_policy)


def test_a_tie_policy_the_protocol_does_not_use_is_refused(script):
    scores, owner, texts, image_keys = random_case(0)
    for protocol, tie_policy in [("remoteclip", "numpy"), ("skyscript", "torch_topk"), ("amfmn", "stable")]:
        with pytest.raises(ValueError) as package_error:
            retrieval_metrics(
                scores, owner, protocol=protocol, tie_policy=tie_policy, texts=texts, image_keys=image_keys
            )
        with pytest.raises(ValueError) as script_error:
            script.retrieval_metrics(
                scores, owner, protocol=protocol, tie_policy=tie_policy, texts=texts, image_keys=image_keys
            )
        assert str(script_error.value) == str(package_error.value)


def gas_adversary(n, run):
    """Scores that drive `run` (a sort of (score, index) pairs) into its worst case (McIlroy, "A
    Killer Adversary for Quicksort", 1999): a score is fixed only when the sort first compares it."""
    gas, key, state = n, [n] * n, {"solid": 0, "candidate": None}

    class Lazy:
        def __init__(self, i):
            self.i = i

        def __gt__(self, other):  # "goes before": the lower key
            x, y = self.i, other.i
            if key[x] == gas and key[y] == gas:
                key[x if x == state["candidate"] else y] = state["solid"]
                state["solid"] += 1
            if key[x] == gas:
                state["candidate"] = x
            elif key[y] == gas:
                state["candidate"] = y
            return key[x] < key[y]

    run([(Lazy(i), i) for i in range(n)])
    return -np.array(key, dtype=np.float64)


def assert_torch_order(script, row, ks):
    scores = torch.from_numpy(row)
    assert script.torch_sort_order(row) == torch.argsort(scores, descending=True).tolist(), row
    for k in ks:
        assert sorted(script.torch_topk_set(row, k)) == sorted(torch.topk(scores, k).indices.tolist()), (row, k)


def test_torch_tie_order_without_torch_equals_torch(script):
    """torch.argsort(descending=True) and torch.topk on rows full of ties: insertion sort (n <= 16),
    introsort, introselect and topk's heap select (k * 64 <= n)."""
    rng = np.random.default_rng(0)
    for n in rng.choice([1, 2, 3, 4, 5, 16, 17, 33, 64, 65, 130, 700], 600):
        drawn = rng.integers(0, int(rng.integers(1, 6)), int(n)).astype(np.float64)
        for row in (drawn, np.sort(drawn), np.sort(drawn)[::-1].copy()):
            assert_torch_order(script, row, {min(k, len(row)) for k in (1, 2, 5, (len(row) + 1) // 2, len(row))})


def test_torch_tie_order_at_the_depth_limit_equals_torch(script, monkeypatch):
    """Adversarial rows, coarsened into ties, that exhaust introsort's / introselect's depth budget:
    their heapsort / heap-select fallbacks run and still order ties as torch does."""
    rows = {}
    for n in (300, 1000):
        rows[n, "sort"] = gas_adversary(n, script._torch_sort)
        rows[n, "select"] = gas_adversary(n, lambda q, k=n // 2: script._torch_top(q, k))
    calls = collections.Counter()

    def counted(name, run):
        return lambda *args: calls.update([name]) or run(*args)

    for name in ("_heap_select", "_sort_heap"):
        monkeypatch.setattr(script, name, counted(name, getattr(script, name)))
    for (n, kind), row in rows.items():
        for coarse in (1, 2, 3):
            assert_torch_order(script, np.floor(row / coarse), [n // 2] if kind == "select" else [])
    # topk's own heap select needs k * 64 <= n, never the case for k = n // 2: these are fallbacks
    assert calls["_sort_heap"] >= 2 and calls["_heap_select"] >= 2, calls


def test_hand_computed_case(metric):
    # i2t: image 0's caption (col 0) ranks 2nd, image 1's (col 1) 1st. t2i: col 0 ranks image 1 (0.6) above
    # its image 0, col 1 ranks image 0 (0.9) above its image 1: both 2nd.
    result = metric.compute(predictions=[[0.5, 0.9], [0.6, 0.8]], references=[[0], [1]], ks=(1, 2))
    assert result["i2t_R@1"] == 50.0 and result["i2t_R@2"] == 100.0
    assert result["t2i_R@1"] == 0.0 and result["t2i_R@2"] == 100.0 and result["mR"] == 62.5


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"tie_policy": "pessimistic"},
        {"tie_policy": "numpy"},
        {"protocol": "multi_positive", "texts": True},
        {"protocol": "dedup_text", "texts": True},
        {"protocol": "dedup_image", "image_keys": True},
    ],
)
def test_same_numbers_as_retrieval_metrics(metric, options):
    scores, references, text_to_image = scores_with_ties()
    options = dict(options)
    if options.pop("texts", False):
        options["texts"] = [f"caption {c % 4}" for c in range(scores.shape[1])]  # duplicates across images
    if options.pop("image_keys", False):
        options["image_keys"] = [f"img{i % 5}.tif" for i in range(scores.shape[0])]  # images 5, 6 repeat 0, 1
    for start in range(0, len(scores), 3):  # streamed in batches, as evaluation loops do
        metric.add_batch(predictions=scores[start : start + 3].tolist(), references=references[start : start + 3])
    assert metric.compute(**options) == retrieval_metrics(scores, text_to_image, **options)


def test_inconsistent_references_name_the_problem(metric):
    with pytest.raises(ValueError, match="another image already holds"):
        metric.compute(predictions=[[0.1, 0.2], [0.3, 0.4]], references=[[0, 1], [1]])
    with pytest.raises(ValueError, match="belong to no image"):
        metric.compute(predictions=[[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]], references=[[0], [1]])


LOAD_FROM_HUB = """
import json, evaluate
metric = evaluate.load("org/rs-recall")
print(json.dumps([metric.compute(predictions={scores!r}, references={references!r}, tie_policy=policy) for policy in {policies!r}]))
"""


def test_push_publishes_a_metric_repo_that_evaluate_loads(tmp_path):
    scores, references, text_to_image = scores_with_ties(seed=1)
    with FakeHub() as hub:
        env = client_env(hub.endpoint, tmp_path / "hf")
        pushed = run_client('from rs_retrieval.cli import main\nmain(["push", "metric", "org/rs-recall"])', env)
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        head = hub.repo("org/rs-recall", "space").resolve("main")
        assert set(head.files) >= {"rs-recall.py", "README.md", "app.py", "requirements.txt"}
        assert "sdk: gradio" in hub.file_bytes("org/rs-recall", "README.md", repo_type="space").decode()
        requirements = hub.file_bytes("org/rs-recall", "requirements.txt", repo_type="space").decode().split()
        assert [line.split("==")[0] for line in requirements] == ["evaluate", "datasets", "numpy"]
        assert requirements[0] == f"evaluate=={evaluate.__version__}"
        # the user's process: evaluate and numpy, no rs_retrieval
        script = LOAD_FROM_HUB.format(scores=scores.tolist(), references=references, policies=TIE_POLICIES)
        loaded = run_client(script, {k: v for k, v in env.items() if k != "PYTHONPATH"}, block=("rs_retrieval",))
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    expected = [retrieval_metrics(scores, text_to_image, tie_policy=policy) for policy in TIE_POLICIES]
    assert json.loads(loaded.stdout.strip().splitlines()[-1]) == expected
