"""`python -m hfspeech ...`: the `hfspeech` command, for an environment whose scripts folder is not on PATH."""

from hfspeech.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
