"""Secrets kept out of error lines: a Hugging Face token anywhere, and the value of a flag named like a secret's.

Bottom layer: imports nothing of hfspeech; the CLI's one-line errors (`cli.common.one_line`) pass through it.
"""

from __future__ import annotations

import re

# What an error line must not repeat: a Hugging Face token anywhere (`hf_` and 34 letters and digits), and the
# value given to a flag whose name suggests a secret, spelled right or not (`--hub_tokn hf_...` was echoed in
# transformers' "not used by the HfArgumentParser: ['--hub_tokn', 'hf_...']", into terminals and CI logs).
HF_TOKEN_PATTERN = re.compile(r"\bhf_[A-Za-z0-9]{20,}")
# a flag whose name holds one of these is a secret's (`--hub_token`, `--api_key`, `--password`); `key` only ending a
# word of it: `--keywords` is demo-data's words, which error lines hid (`keyword '<hidden>' must be a word`)
SECRET_FLAG_WORD = re.compile(r"tok|pass|secret|auth|keys?$")


def hide_secrets(message: str, argv=()) -> str:
    """`message` with each secret of `argv` (the values of `--*token*`-like flags) and each token replaced by
    `<hidden>`: error lines quote the words they refuse."""
    secrets = []
    for index, word in enumerate(argv):
        name, equals, value = word.partition("=")
        if not name.startswith("-") or not any(SECRET_FLAG_WORD.search(part)
                                               for part in re.split(r"[-_]+", name.lower()) if part):
            continue
        if not equals and index + 1 < len(argv) and not argv[index + 1].startswith("--"):
            value = argv[index + 1]
        if len(value) >= 4:  # a short value ("1", "no") would hide itself all over the line
            secrets.append(value)
    for secret in sorted(secrets, key=len, reverse=True):
        message = message.replace(secret, "<hidden>")
    return HF_TOKEN_PATTERN.sub("<hidden>", message)
