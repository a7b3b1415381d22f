"""The retrieval metric as a Hugging Face `evaluate` module.

`evaluate.load(str(METRIC_DIR))` loads `evaluate_metric/rs_retrieval_recall/` offline; publishing
it as a Hub metric is `rs_retrieval.hub.metric.push_metric`.
"""

from pathlib import Path

METRIC_NAME = "rs_retrieval_recall"
METRIC_DIR = Path(__file__).resolve().parent / "evaluate_metric" / METRIC_NAME
