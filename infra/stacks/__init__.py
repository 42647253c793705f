"""The stacks `app.py` creates: `<prefix>-API` and one `<prefix>-Model-<model>-<tag>`
per chosen model."""
