"""hfspeech: train, evaluate, export and publish speech and audio classifiers on the Hugging Face stack.

Importing the package is cheap: it imports neither torch nor transformers. The baseline models
(``hfspeech-cnn``, ``hfspeech-lstm``, ``hfspeech-bcresnet``) are registered with ``AutoConfig``,
``AutoModelForAudioClassification`` and ``AutoFeatureExtractor`` by ``hfspeech.models.register()``,
which every hfspeech loader calls, and which importing any model class runs
(``from hfspeech.models import CNNAudioConfig``), as does importing ``hfspeech.inference.pipeline``. Call it
yourself before ``AutoModelForAudioClassification.from_pretrained`` / ``pipeline("audio-classification")`` on
an hfspeech folder when nothing else of hfspeech ran first (``import hfspeech`` alone does not: it would cost
every ONNX ``predict`` the torch and transformers imports it avoids).
"""

__version__ = "0.1.0"
