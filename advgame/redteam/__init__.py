"""Red-teaming: targets, attacks (AdvGame Attacker, PAIR, TAP, GCG), batch runner (`advgame redteam`)."""
