"""HTML reports of runs and results with PNG figures (`advgame report`)."""
