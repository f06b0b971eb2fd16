"""Made-up data and models for demos, tests, benchmarks and smoke runs: tooling, not the library.

Nothing in the pipeline (data -> models -> training -> ...) imports this package; the `hfspeech demo`,
`demo-data` and `tiny-model` commands, the tests and the benchmarks do.

- `spoken`: espeak-ng keyword-spotting and spoken-language-ID sets (`generate_keyword_dataset`,
  `generate_language_dataset`), the clips made by `espeak`; `digits`: "zero".."nine" in many espeak-ng voices
  with a digit-labelled manifest, extra training voices for FSDD (`generate_spoken_digits`);
- `events`: a multi-label sound-event set (`generate_event_dataset`, `synth_event`);
- `signals`: coloured noise, steady tones (`synth_tone_clip`), background-noise files (`generate_noise_files`);
- `tiny`: tiny randomly initialised Wav2Vec2/HuBERT/WavLM/AST/Whisper checkpoints (`save_tiny_ssl_model`);
- `reuse`: the one rule by which a generated folder is reused or made again (`GeneratedFolder`).

The modules are imported one by one (``from hfspeech.synthetic.spoken import ...``): `tiny` loads transformers,
the generators numpy and soundfile, and `import hfspeech.synthetic` alone loads none of them.
"""
