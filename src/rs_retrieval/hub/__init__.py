"""Hugging Face Hub integration: model/dataset cards, flat remote code and one-commit publishing.

Submodules import transformers/huggingface_hub only when used:
`cards` (write_model_card, write_dataset_card), `remote_code` (bundle), `publish` (push_model,
push_dataset), `space` (build_space, push_space), `local_hub` (LocalHub, a local stand-in Hub for
trying the loop offline), `paper_results` (published numbers for the cards), `commands`
(`rs-retrieval push`, `rs-retrieval space build`, `rs-retrieval hub serve-local`).
"""
