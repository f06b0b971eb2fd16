"""`python -m hfspeech.cli ...`: the `hfspeech` command (the server's worker launcher and some tests run it so)."""

from hfspeech.cli import command

if __name__ == "__main__":
    command()
