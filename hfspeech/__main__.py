"""`python -m hfspeech ...`: the `hfspeech` command, for an environment whose scripts folder is not on PATH."""

from hfspeech.cli import command

if __name__ == "__main__":
    command()
