"""`rs-retrieval serve`: a Gradio web app for text -> images, image -> captions and zero-shot classification.

`launch` starts it (model, corpus, server; `serve_space` for a Space folder's `app.py`), `service`
holds what the app does (testable without a browser), `ui` the page, `uploads` the
checks on uploaded files, `about` the model summary and `footprints` the offline hit map.
Gradio is the `web` extra and is imported only by `ui`.
"""
