"""Seed prompts of the game: loading (builtin sets, local files, the hub), held-out splits, streams."""

from advgame.data.seeds import (
    SeedDataError,
    SeedPrompt,
    SeedStream,
    builtin_names,
    load_seeds,
    split_heldout,
)

__all__ = ["SeedDataError", "SeedPrompt", "SeedStream", "builtin_names", "load_seeds", "split_heldout"]
