"""`push_to_hub` of our models and processors: the repository `rs-retrieval push` publishes.

transformers' inherited `push_to_hub` uploads weights and config only, so the repository needs
rs_retrieval installed to load. These mixins save into a temporary folder and publish through
`rs_retrieval.hub.publish` instead: weights, processor, flat remote code (`auto_map`) and a
model card, in one commit.

This module is bundled into remote-code repositories (models import it), so it imports the
publishing machinery by name at call time: the bundler then leaves it out, and a model loaded
with `trust_remote_code=True` on a machine without rs_retrieval falls back to transformers'
`push_to_hub`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import tempfile
from pathlib import Path

PUBLISH_MODULE = "rs_retrieval.hub.publish"


def _publish_module():
    """`rs_retrieval.hub.publish`, or None where the package is not installed (remote code)."""
    return importlib.import_module(PUBLISH_MODULE) if importlib.util.find_spec("rs_retrieval") is not None else None


class RetrievalModelPushMixin:
    """`model.push_to_hub(repo_id, processor=...)` = `rs-retrieval push` of the saved model."""

    def push_to_hub(
        self,
        repo_id: str,
        *,
        processor=None,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        card: bool = True,
        dataset_name: str | None = None,
        metrics: dict | None = None,
        license: str = "apache-2.0",
        **kwargs,
    ):
        """Publish this model (and `processor`) with remote code and a model card in one commit.

        `metrics` (a metrics.json-style dict, e.g. `{"test": {...}}`) fills the card's model-index;
        `dataset_name` names the dataset it was measured on. Returns the `CommitInfo`.
        """
        publish = _publish_module()
        if publish is None:
            return super().push_to_hub(
                repo_id, commit_message=commit_message, private=private, token=token, revision=revision, **kwargs
            )
        if kwargs:
            raise TypeError(f"push_to_hub got unsupported arguments {sorted(kwargs)}")
        with tempfile.TemporaryDirectory(prefix="rs_retrieval_push_") as tmp:
            folder = Path(tmp) / "model"
            self.save_pretrained(folder)
            if processor is not None:
                processor.save_pretrained(folder)
            if metrics is not None:
                (folder / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
            return publish.push_model(
                folder,
                repo_id,
                private=private,
                token=token,
                revision=revision,
                commit_message=commit_message or f"Upload {type(self).__name__}",
                model=self,
                processor=processor,
                card=card,
                dataset_name=dataset_name,
                license=license,
            )


class RetrievalProcessorPushMixin:
    """`processor.push_to_hub(repo_id, model=...)`: with the model, the same one-commit repository
    as `model.push_to_hub(repo_id, processor=processor)`; alone, the processor files and their
    remote code are added to the repository (its other files stay)."""

    def push_to_hub(
        self,
        repo_id: str,
        *,
        model=None,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        **kwargs,
    ):
        publish = _publish_module()
        if publish is None:
            return super().push_to_hub(
                repo_id, commit_message=commit_message, private=private, token=token, revision=revision, **kwargs
            )
        if model is not None:
            return model.push_to_hub(
                repo_id,
                processor=self,
                commit_message=commit_message,
                private=private,
                token=token,
                revision=revision,
                **kwargs,
            )
        if kwargs:
            raise TypeError(f"push_to_hub got unsupported arguments {sorted(kwargs)}")
        return publish.push_processor(
            self, repo_id, private=private, token=token, revision=revision, commit_message=commit_message
        )
