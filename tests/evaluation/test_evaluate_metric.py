"""The `evaluate` metric module: self-contained (its own numpy ranks, equal to `retrieval_metrics`
on randomized matrices with ties for every protocol and tie policy), loads offline from its folder,
and `rs-retrieval push metric` publishes a metric Space that `evaluate.load("org/name")` loads in a
process that cannot import rs_retrieval."""

import importlib.util
import itertools
import json
import re

import numpy as np
import pytest

from hub_server import FakeHub, client_env, run_client
from rs_retrieval.evaluation.choices import DEFAULT_TIE_POLICY, PROTOCOLS, TIE_POLICIES
from rs_retrieval.evaluation.hf_evaluate import METRIC_DIR, METRIC_NAME
from rs_retrieval.evaluation.metrics import retrieval_metrics

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
    images and duplicate image keys."""
    rng = np.random.default_rng(seed)
    n_img = int(rng.integers(2, 9))
    counts = rng.integers(1, 5, n_img)
    owner = np.repeat(np.arange(n_img), counts)
    rng.shuffle(owner)
    scores = rng.integers(0, 4, (n_img, len(owner))).astype(np.float64) / 4
    texts = [f"  A caption {t}" if t % 2 else f"a CAPTION   {t}" for t in rng.integers(0, 5, len(owner))]
    image_keys = [f"img{k}.tif" for k in rng.integers(0, max(2, n_img - 2), n_img)]
    return scores, owner, texts, image_keys


def test_the_script_is_self_contained_with_the_packages_options(script):
    source = (METRIC_DIR / f"{METRIC_NAME}.py").read_text()
    assert not re.search(r"^\s*(from|import) rs_retrieval", source, flags=re.MULTILINE)
    assert tuple(script.PROTOCOLS) == PROTOCOLS and set(script.TIE_POLICIES) == set(TIE_POLICIES)
    assert script.DEFAULT_TIE_POLICY == DEFAULT_TIE_POLICY
    readme = (METRIC_DIR / "README.md").read_text()
    assert f"default `{DEFAULT_TIE_POLICY}`" in readme and "pip install rs-retrieval" not in readme


@pytest.mark.parametrize("protocol, tie_policy", list(itertools.product(PROTOCOLS, TIE_POLICIES)))
def test_script_equals_retrieval_metrics_on_random_cases_with_ties(script, protocol, tie_policy):
    for seed in range(25):
        scores, owner, texts, image_keys = random_case(seed)
        options = {"tie_policy": tie_policy, "protocol": protocol, "texts": texts, "image_keys": image_keys}
        ranks = script.retrieval_ranks(scores, owner, **options)
        ours = script.metrics_from_ranks(*ranks, ks=(1, 2, 5)) | {"protocol": protocol, "tie_policy": tie_policy}
        assert ours == retrieval_metrics(scores, owner, ks=(1, 2, 5), **options), (seed, protocol, tie_policy)


def test_hand_computed_case(metric):
    # i2t: image 0's caption (col 0) ranks 2nd, image 1's (col 1) 1st. t2i: col 0 ranks image 1 (0.6) above
    # its image 0, col 1 ranks image 0 (0.9) above its image 1: both 2nd.
    result = metric.compute(predictions=[[0.5, 0.9], [0.6, 0.8]], references=[[0], [1]], ks=(1, 2))
    assert result["i2t_R@1"] == 50.0 and result["i2t_R@2"] == 100.0
    assert result["t2i_R@1"] == 0.0 and result["t2i_R@2"] == 100.0 and result["mR"] == 62.5


@pytest.mark.parametrize("options", [
    {},
    {"tie_policy": "pessimistic"},
    {"tie_policy": "numpy"},
    {"protocol": "multi_positive", "texts": True},
    {"protocol": "dedup_text", "texts": True},
    {"protocol": "dedup_image", "image_keys": True},
])
def test_same_numbers_as_retrieval_metrics(metric, options):
    scores, references, text_to_image = scores_with_ties()
    options = dict(options)
    if options.pop("texts", False):
        options["texts"] = [f"caption {c % 4}" for c in range(scores.shape[1])]  # duplicates across images
    if options.pop("image_keys", False):
        options["image_keys"] = [f"img{i % 5}.tif" for i in range(scores.shape[0])]  # images 5, 6 repeat 0, 1
    for start in range(0, len(scores), 3):  # streamed in batches, as evaluation loops do
        metric.add_batch(predictions=scores[start:start + 3].tolist(), references=references[start:start + 3])
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
