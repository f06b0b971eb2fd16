"""Command-line arguments of the fine-tuning recipe, as `HfArgumentParser` dataclasses.

Three groups, as in transformers' own examples: what model (`ModelArguments`), what data and how to
prepare it (`DataArguments`), and how to train (`transformers.TrainingArguments`, with defaults set for
audio classification in `training.command_line`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from hfspeech.data.split_names import given_split_names, split_name_arguments
from hfspeech.evaluation.arguments import OWN_DEFAULT
from hfspeech.models.problem_types import MULTI_LABEL
from hfspeech.training.flag_checks import check_data_flags

if TYPE_CHECKING:
    from hfspeech.data.labelled import DataSpec


@dataclass
class ModelArguments:
    model_type: str = field(
        default="cnn",
        metadata={"help": "Baseline to build from scratch: 'cnn' (log-mel CNN), 'lstm' (BiLSTM over MFCC) or "
                  "'bcresnet' (BC-ResNet, docs/edge.md). "
                  "Ignored when --model_name_or_path is given."},
    )
    model_name_or_path: Optional[str] = field(
        default=None,
        metadata={"help": "A saved model folder or Hub id to start from (any AutoModelForAudioClassification)."},
    )
    config_overrides: Optional[str] = field(
        default=None,
        metadata={"help": 'JSON object of config values, for a new baseline or a pretrained model, e.g. '
                  '\'{"n_mels": 40}\' or \'{"mask_time_prob": 0.05, "layerdrop": 0.0}\'.'},
    )
    sampling_rate: int = field(
        default=16000, metadata={"help": "Sampling rate of a new baseline (a pretrained model brings its own)."}
    )
    cache_dir: Optional[str] = field(default=None, metadata={"help": "Where Hub downloads are cached."})
    model_revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit)."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow model code from the Hub repo to run. Off unless you trust it."}
    )
    freeze_feature_encoder: bool = field(
        default=True,
        metadata={"help": "Freeze the convolutional feature encoder (Wav2Vec2/XLS-R/HuBERT/WavLM); no effect on "
                  "models without one."},
    )
    freeze_base_model: bool = field(
        default=False, metadata={"help": "Train only the head (projector, classifier): a linear probe."}
    )
    cache_frozen_features: bool = field(
        default=True,
        metadata={"help": "With --freeze_base_model: run the frozen base once per clip, store what the head needs "
                  "(Arrow, beside the decoded audio) and train the head from it, many times faster. Limits: no "
                  "waveform augmentation or SpecAugment, centre crops in training too, not with --streaming. "
                  "False runs the frozen base on every batch."},
    )
    score_label_words: bool = field(
        default=False,
        metadata={"help": "Whisper only: classify by the decoder's likelihood of each label's words (\"6\" -> \" six\", "
                  "\" Six.\", \" 6\" ...) instead of a new linear head on the encoder; knows spoken words before "
                  "training, trains every weight, all spellings packed in one decoder pass per clip "
                  "(docs/pretrained.md). Labels must be words or digits; single-label only. A saved label scorer "
                  "goes on training as one (flag or not) for the same labels."},
    )
    pool_clip_frames: bool = field(
        default=False,
        metadata={"help": "Whisper only: average the encoder frames that cover the clip, not its whole window "
                  "(silence included) as transformers' WhisperForAudioClassification does; with a window longer "
                  "than the clip (--whisper_window_seconds) the best frozen tiny.en probe measured on FSDD "
                  "(docs/pretrained.md). Saved as model_type whisper-clip-pooling: loads with hfspeech, or "
                  "trust_remote_code from a staged repo."},
    )
    whisper_window_seconds: Optional[int] = field(
        default=None,
        metadata={"help": "Whisper only: the encoder's window in whole seconds, at least --max_length_seconds; "
                  "clips are padded with silence to it. Default: the crop rounded up, or a saved run's own window "
                  "where longer (training on from a probe keeps it). Cost grows with it (a 5-s window: 5.6x a "
                  "1-s one for tiny.en)."},
    )
    head_learning_rate: Optional[float] = field(
        default=None, metadata={"help": "Learning rate of the head (default: --learning_rate)." + OWN_DEFAULT}
    )
    layerwise_lr_decay: Optional[float] = field(
        default=None,
        metadata={"help": "Layer-wise learning-rate decay, e.g. 0.9: each layer down learns 0.9x slower (the "
                  "encoder's final norm learns with the top layer; BC-ResNet decays by stage)."},
    )
    use_weighted_layer_sum: Optional[bool] = field(
        default=None, metadata={"help": "Pool a learned weighted sum of all encoder layers (SSL models)."}
    )
    return_attention_mask: Optional[bool] = field(
        default=None,
        metadata={"help": "Pass an attention mask with padded batches (default: what the feature extractor says; "
                  "wav2vec2-base style models with group-norm feature encoders must not get one)." + OWN_DEFAULT},
    )
    ignore_mismatched_sizes: bool = field(default=True, metadata={
        "help": "Replace a pretrained classification head whose size differs from the new labels."})
    problem_type: Optional[str] = field(
        default=None,
        metadata={"help": "'multi_label_classification': each clip has a list of labels (manifest 'labels' column, "
                  "';'-separated in CSV); trained with BCE, scored with sigmoid and per-class thresholds. "
                  "Default: single-label classification.",
                  "choices": ["single_label_classification", "multi_label_classification"]},
    )

    @property
    def multi_label(self) -> bool:
        return self.problem_type == MULTI_LABEL


@dataclass
class DataArguments:
    data_dir: Optional[str] = field(default=None, metadata={
        "help": "Audio folder: data_dir/<label>/*.wav (optionally train/ test/ subfolders)."})
    train_file: Optional[str] = field(default=None, metadata={"help": "CSV/TSV/JSONL manifest with path and label."})
    validation_file: Optional[str] = field(default=None, metadata={"help": "Validation manifest."})
    test_file: Optional[str] = field(default=None, metadata={"help": "Test manifest."})
    dataset_name: Optional[str] = field(
        default=None, metadata={"help": "A datasets dataset: Hub name or a folder saved with save_to_disk."}
    )
    dataset_config_name: Optional[str] = field(default=None, metadata={"help": "The dataset's configuration."})
    train_split_name: str = field(default="train", metadata={"help": "--dataset_name: the split to train on."})
    eval_split_name: str = field(
        default="validation", metadata={"help": "--dataset_name: the validation split (by default also dev, valid, "
                                        "val or eval; carved out of train when there is none)."})
    test_split_name: str = field(
        default="test", metadata={"help": "--dataset_name: the test split (carved out of train when there is none)."})
    audio_column_name: str = field(default="audio", metadata={"help": "Audio column of a datasets dataset."})
    label_column_name: str = field(
        default="label",
        metadata={"help": "Label column (datasets dataset or manifest); the default also finds a 'labels' column."},
    )
    path_column_name: str = field(default="path", metadata={"help": "Audio path column of a manifest."})
    label_depth: Optional[int] = field(
        default=None,
        metadata={"help": "Audio folder with nested folders (data_dir/<label>/<speaker>/*.wav): which folder below "
                  "data_dir (or its split folders) is the label, 1 = the first. Without it nested files are an "
                  "error rather than a guess."},
    )
    group_column: Optional[str] = field(
        default=None,
        metadata={"help": "Manifest column naming each clip's group (speaker, recording, session): missing splits "
                  "take whole groups, and groups shared by splits are warned about (hfspeech.data.groups)."},
    )
    validation_split_percentage: float = field(
        default=10.0, metadata={"help": "Percentage of the data held out for validation when there is no such split."}
    )
    test_split_percentage: float = field(
        default=10.0, metadata={"help": "Percentage of the data held out for testing when there is no such split."}
    )
    max_length_seconds: Optional[float] = field(
        default=2.0, metadata={"help": "Clips are cropped to this length: at random in training, centred for eval "
                              "(0: no crop, whole clips)."}
    )
    trim_silence: bool = field(default=False, metadata={"help": "Trim leading/trailing silence when decoding."})
    trim_top_db: float = field(default=40.0, metadata={"help": "Silence threshold in dB below the clip's peak."})
    skip_bad_files: bool = field(
        default=False,
        metadata={"help": "Skip corrupt/empty/NaN files instead of stopping; they are counted in data_report.json."},
    )
    preprocessing_num_workers: Optional[int] = field(
        default=None, metadata={"help": "Processes for decoding (datasets.map num_proc)."}
    )
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Use at most this many train clips."})
    max_eval_samples: Optional[int] = field(
        default=None, metadata={"help": "Use at most this many validation and test clips."}
    )
    class_weighted_loss: bool = field(
        default=False, metadata={"help": "Weight the loss by inverse class frequency (for imbalanced data)."}
    )
    oversample: bool = field(
        default=False, metadata={"help": "Draw training clips with probability inversely proportional to class size."}
    )
    label_separator: str = field(
        default=";", metadata={"help": "Separator of several labels in one manifest cell (multi-label), e.g. 'dog;siren'."}
    )
    pos_weight_from_frequencies: bool = field(
        default=False,
        metadata={"help": "Multi-label: weight each class's positive term of the BCE by negatives/positives in the "
                  "train split (clipped to --max_pos_weight), so rare classes are not drowned out."},
    )
    max_pos_weight: float = field(default=100.0, metadata={"help": "Upper clip of --pos_weight_from_frequencies."})
    tune_thresholds: bool = field(
        default=True,
        metadata={"help": "Multi-label: tune one decision threshold per class on the validation split (max F1) and "
                  "save them as label_thresholds in config.json (else 0.5 for all)."},
    )
    noise_snr_db: Optional[str] = field(
        default=None, metadata={"help": "Add white noise at an SNR drawn from this range, e.g. '5,30'."}
    )
    noise_dir: Optional[str] = field(
        default=None, metadata={"help": "Folder of background-noise files mixed into training clips."}
    )
    noise_prob: float = field(default=0.5, metadata={"help": "Probability of each noise augmentation."})
    speed_factors: Optional[str] = field(
        default=None, metadata={"help": "Speed perturbation factors, e.g. '0.9,1.0,1.1'."}
    )
    gain_db: Optional[float] = field(default=None, metadata={"help": "Random gain in +/- this many dB."})
    time_shift_seconds: Optional[float] = field(default=None, metadata={"help": "Random shift of up to this long."})
    endpoint_trim_db: Optional[float] = field(
        default=None, metadata={"help": "Half of the clips: cut where the sound falls below a threshold drawn from "
                                "this many dB (e.g. 20) to 40 dB below the clip's peak, as an eager endpointer "
                                "cuts into weak consonants (data.augment_timing.EndpointTrim)."}
    )
    vtlp_warp: Optional[str] = field(
        default=None, metadata={"help": "Vocal tract length perturbation: warp the spectrum by a factor drawn from "
                                "this range, e.g. '0.9,1.1' (another speaker's formants; data.augment_speaker)."}
    )
    pitch_semitones: Optional[float] = field(
        default=None, metadata={"help": "Pitch shift by up to +/- this many semitones (half of the clips)."}
    )
    reverb_prob: Optional[float] = field(
        default=None, metadata={"help": "Probability of convolving a clip with a generated room impulse response."}
    )
    mixup_alpha: Optional[float] = field(
        default=None, metadata={"help": "Mixup of training batches with lambda ~ Beta(alpha, alpha), e.g. 0.2."}
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Stream the training clips, decoding each one when a batch needs it, instead of decoding "
                  "the whole train split up front (validation/test are still decoded once). See hfspeech.data.streaming."},
    )
    shuffle_buffer_size: int = field(
        default=1000, metadata={"help": "--streaming: clips held in the shuffle buffer (reshuffled every epoch)."}
    )
    class_names: Optional[str] = field(
        default=None,
        metadata={"help": "--streaming: the classes, comma-separated, in class-id order, for a streamed dataset "
                  "whose label column is not a ClassLabel (e.g. 'yes,no,up'; --label_names is TrainingArguments' own)."},
    )

    def __post_init__(self):
        check_data_flags(self)  # `training.flag_checks`: as the flags are parsed, before any data is read

    def spec(self) -> "DataSpec":
        """What the data stage needs from these flags (`data.labelled.DataSpec`)."""
        from hfspeech.data.labelled import DataSpec  # here: `--help` does not import datasets

        return DataSpec(source=self.source(), preparation=self.preparation(), label_separator=self.label_separator,
                        class_names=self.class_names, validation_percentage=self.validation_split_percentage,
                        test_percentage=self.test_split_percentage, max_train_samples=self.max_train_samples,
                        max_eval_samples=self.max_eval_samples, shuffle_buffer_size=self.shuffle_buffer_size,
                        group_column=self.group_column)

    def source(self) -> dict:
        """Keyword arguments of `data.loading.load_audio_dataset`: where the data is and its columns."""
        return dict(
            data_dir=self.data_dir, train_file=self.train_file, validation_file=self.validation_file,
            test_file=self.test_file, dataset_name=self.dataset_name, dataset_config_name=self.dataset_config_name,
            audio_column=self.audio_column_name, label_column=self.label_column_name,
            path_column=self.path_column_name, label_depth=self.label_depth,
            # only names other than the defaults: a run recorded before these flags (run_inputs.json) resumes
            **split_name_arguments(self.given_split_names()),
        )

    def given_split_names(self) -> dict[str, str]:
        """{role: split} for the split-name flags given other than their defaults (`data.split_names`)."""
        return given_split_names(self.train_split_name, self.eval_split_name, self.test_split_name)

    def preparation(self) -> dict:
        """Keyword arguments of `data.prepare.prepare_dataset`: how clips are decoded and checked."""
        return dict(trim=self.trim_silence, trim_top_db=self.trim_top_db, skip_bad_files=self.skip_bad_files,
                    num_proc=self.preprocessing_num_workers)

    def trimmed_at(self) -> Optional[float]:
        """`--trim_top_db` where clips are trimmed (`--trim_silence`), else None: what the model records, the run's
        record checks on resume, and a distilled teacher's trim is compared with."""
        return self.trim_top_db if self.trim_silence else None
