"""Hugging Face Hub integration: flat remote code and one-commit publishing.

Submodules import transformers/huggingface_hub only when used:
`remote_code` (bundle), `publish` (push_model, push_dataset, with the cards of `rs_retrieval.cards`),
`metric` (push_metric: the retrieval metric as a Hub metric), `space` (build_space, push_space),
`local_hub` (LocalHub, a local stand-in Hub for trying the loop offline), `push` (push_folder: any of
these kinds, detected from the folder). The `rs-retrieval push|space|hub` commands live in `rs_retrieval.cli.hub`.
"""
