"""A tabular AdvGame: a finite attacker/defender game with rubric payoffs, its exact KL-regularised
equilibrium, and the project's DPO/IPO/GRPO updates run on it (docs/testbed.md).

    game.py      payoff tables (the default game, random games)
    judge.py     pairwise verdicts / pointwise scores from the tables, with noise
    solver.py    the equilibrium (ρ*, π*) and its certificate (exploitability)
    policies.py  tabular softmax policies with the project's ParamEMA / ParamBank
    training.py  the update rules of each method
    run.py       `python -m advgame.testbed run`: curves, plot, JSON
"""

from advgame.testbed.game import GameConfig, TabularGame, default_game, random_game
from advgame.testbed.judge import Judge, JudgeConfig, make_judge
from advgame.testbed.solver import Equilibrium, Gaps, exploitability, solve
from advgame.testbed.training import METHODS, Curves, Method, TrainConfig, train

__all__ = [
    "METHODS",
    "Curves",
    "Equilibrium",
    "GameConfig",
    "Gaps",
    "Judge",
    "JudgeConfig",
    "Method",
    "TabularGame",
    "TrainConfig",
    "default_game",
    "exploitability",
    "make_judge",
    "random_game",
    "solve",
    "train",
]
