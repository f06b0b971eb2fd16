"""A warning where transformers' own `push_to_hub` would publish an hfspeech model that loads only with hfspeech.

hfspeech's classes (the baselines, their feature extractors, Whisper scoring label words or pooling the clip's
frames) have a `model_type` transformers does not know. `model.push_to_hub(repo)` uploads what `save_pretrained`
writes: config and weights, no code and no `auto_map`, so the repo then fails to load where hfspeech is not
installed, `trust_remote_code=True` or not, and nothing said so. `hfspeech push` / `hfspeech stage` write the
code into the repo (`hfspeech.hub.remote_code`). A class loaded from such a repo's code (`_auto_class` set by
transformers) copies that code when saved, so it pushes a complete repo and is not warned.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class CodelessPushWarning:
    """Mixin for hfspeech's `PreTrainedModel` and feature-extractor classes: warns, then pushes as transformers does."""

    def push_to_hub(self, repo_id, *args, **kwargs):
        if getattr(self, "_auto_class", None) is None:
            logger.warning(
                "%s.push_to_hub(%r) uploads no model code: the repo loads only where hfspeech is installed and "
                "registered (hfspeech.models.register()); `hfspeech push RUN --repo_id %s` writes a repo that "
                "loads without it (trust_remote_code=True)", type(self).__name__, repo_id, repo_id)
        return super().push_to_hub(repo_id, *args, **kwargs)
