"""Publishing a training run: stage a Hub-ready folder (weights, card, self-contained code) and push it.

``stage_run`` copies only what a model repo needs and writes the card; ``push_run`` stages into a temporary
folder and uploads it with ``huggingface_hub`` (the token is huggingface_hub's own: ``HF_TOKEN`` or
``hf auth login``, never written anywhere).
"""

from hfspeech.hub.push import push_run
from hfspeech.hub.stage import StageError, stage_run

__all__ = ["StageError", "push_run", "stage_run"]
