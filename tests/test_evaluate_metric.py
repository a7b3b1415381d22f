"""The `evaluate` metric module: loads offline from its folder, gives `retrieval_metrics`' numbers,
and `rs-retrieval push metric` publishes a metric repository that `evaluate.load("org/name")` loads."""

import json

import numpy as np
import pytest

from hub_server import FakeHub, client_env, run_client
from rs_retrieval.evaluation.hf_evaluate import METRIC_DIR
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
print(json.dumps(metric.compute(predictions={scores!r}, references={references!r}, tie_policy="numpy")))
"""


def test_push_publishes_a_metric_repo_that_evaluate_loads(tmp_path):
    scores, references, text_to_image = scores_with_ties(seed=1)
    with FakeHub() as hub:
        env = client_env(hub.endpoint, tmp_path / "hf")
        pushed = run_client('from rs_retrieval.cli import main\nmain(["push", "metric", "org/rs-recall"])', env)
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        head = hub.repo("org/rs-recall", "space").resolve("main")
        assert set(head.files) >= {"rs-recall.py", "README.md", "app.py"}
        assert "sdk: gradio" in hub.file_bytes("org/rs-recall", "README.md", repo_type="space").decode()
        loaded = run_client(LOAD_FROM_HUB.format(scores=scores.tolist(), references=references), env)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert json.loads(loaded.stdout.strip().splitlines()[-1]) == retrieval_metrics(scores, text_to_image, tie_policy="numpy")
