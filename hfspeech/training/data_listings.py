"""What a local data path holds, told without reading its audio (`path_listing`): the one copy lives in
`data.listings`, shared with the staged card's check that generated data is unchanged since training."""

from __future__ import annotations

from hfspeech.data.listings import path_listing

__all__ = ["path_listing"]
