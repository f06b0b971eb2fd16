#!/usr/bin/env python
"""Fine-tune an audio classifier: a CNN/LSTM baseline or any AutoModelForAudioClassification checkpoint.

    python recipes/finetune.py --data_dir DATA --model_type cnn --output_dir runs/kws
    accelerate launch recipes/finetune.py --data_dir DATA --model_type lstm --output_dir runs/kws-lstm

All arguments: `python recipes/finetune.py --help` (model, data and transformers.TrainingArguments).
Flags can come from files too: `--args_file FILE` (flag text, JSON or YAML) or a `.json`/`.yaml` file as the
first argument; flags on the command line win (docs/training.md, "Flag files and transformers' flags").
The logic lives in `hfspeech.training.run`; this is `hfspeech train`, which also traces a baseline's run to
`OUTPUT_DIR/torchscript` for a fast `hfspeech predict`.
"""

import sys

from hfspeech.cli import end_process, main

if __name__ == "__main__":
    end_process(main(["train", *sys.argv[1:]]))
