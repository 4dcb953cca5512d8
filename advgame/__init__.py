"""advgame: safety alignment of language models as a non-cooperative Attacker/Defender game."""

__version__ = "0.1.0"
