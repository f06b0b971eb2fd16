"""Configuration of the hfspeech LSTM baseline (``model_type="hfspeech-lstm"``)."""

from typing import Optional

from hfspeech.models.configuration_baseline import AudioBaselineConfig, check_probability, check_whole


class LSTMAudioConfig(AudioBaselineConfig):
    """A stacked (bi)directional LSTM over MFCCs with attentive pooling.

    Args:
        lstm_hidden_size: Hidden size of each direction.
        num_lstm_layers: Number of stacked layers.
        bidirectional: Add a backward direction per layer (outputs are concatenated).
        input_projection_size: Linear projection of the features before the LSTM; None skips it.
        lstm_dropout: Dropout between stacked layers.
        feature_type, pooling, classifier_dropout, apply_spec_augment: see
            ``AudioBaselineConfig`` (only the defaults differ).
        kwargs: Forwarded to ``AudioBaselineConfig`` / ``PretrainedConfig``.
    """

    model_type = "hfspeech-lstm"

    def __init__(
        self,
        lstm_hidden_size: int = 128,
        num_lstm_layers: int = 2,
        bidirectional: bool = True,
        input_projection_size: Optional[int] = None,
        lstm_dropout: float = 0.1,
        feature_type: str = "mfcc",
        pooling: str = "attentive",
        classifier_dropout: float = 0.1,
        apply_spec_augment: bool = False,
        **kwargs,
    ):
        if num_lstm_layers < 1:
            raise ValueError(f"num_lstm_layers must be at least 1, got {num_lstm_layers}")
        check_whole("lstm_hidden_size", lstm_hidden_size, 1)  # 0 was saved, and failed building the model
        check_probability("lstm_dropout", lstm_dropout)
        self.lstm_hidden_size = lstm_hidden_size
        self.num_lstm_layers = num_lstm_layers
        self.bidirectional = bidirectional
        self.input_projection_size = input_projection_size
        self.lstm_dropout = lstm_dropout
        super().__init__(
            feature_type=feature_type,
            pooling=pooling,
            classifier_dropout=classifier_dropout,
            apply_spec_augment=apply_spec_augment,
            **kwargs,
        )
