"""Red-team attacks: the trained AdvGame Attacker, PAIR, TAP and GCG (one module each)."""
