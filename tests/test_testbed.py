"""The tabular game testbed: the solver's certificate, brute force on 2×2 games, the fixed points of the
update rules, and the acceptance run (DPO-MD and IPO-MD reach the equilibrium on the default game)."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advgame.losses import dpo_loss, ipo_loss
from advgame.testbed import (
    GameConfig,
    JudgeConfig,
    TabularGame,
    TrainConfig,
    default_game,
    exploitability,
    make_judge,
    random_game,
    solve,
    train,
    training,
)
from advgame.testbed.run import main as run_main
from advgame.testbed.solver import objective

# ---- solver ------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    num_seeds=st.integers(1, 3),
    num_strategies=st.integers(2, 4),
    num_responses=st.integers(2, 3),
    beta=st.floats(0.05, 2.0),
    share_prob=st.floats(0.0, 0.8),
    kl=st.sampled_from(["reverse", "forward"]),
)
def test_solver_equilibrium_passes_its_certificate_on_random_games(
    seed, num_seeds, num_strategies, num_responses, beta, share_prob, kl
):
    game = random_game(
        torch.Generator().manual_seed(seed),
        num_seeds=num_seeds,
        num_strategies=num_strategies,
        num_responses=num_responses,
        beta=beta,
        share_prob=share_prob,
    )
    eq = solve(game, kl=kl)
    assert eq.gaps.attacker <= 1e-8 and eq.gaps.defender <= 1e-8, eq.gaps
    assert torch.allclose(eq.rho.sum(-1), torch.ones(game.num_seeds, dtype=torch.float64))
    assert torch.allclose(eq.pi.sum(-1), torch.ones(game.num_prompts, dtype=torch.float64))
    # the certificate is not vacuous: the references themselves are exploitable unless rewards are flat
    gaps = exploitability(game, game.ref_att, game.ref_def, kl=kl)
    assert gaps.attacker >= -1e-12 and gaps.defender >= -1e-12
    assert gaps.total > 1e-6


def _two_by_two(gen: torch.Generator, beta: float, shared: bool) -> TabularGame:
    """One seed, two faithful rewrite strategies, two responses; both rewrites on one prompt (coupled:
    the defender's payoff depends on ρ) or on two prompts (decoupled)."""
    r = lambda *s: torch.rand(*s, generator=gen, dtype=torch.float64)
    ref_att, ref_def = r(1, 2) + 0.1, r(1 if shared else 2, 2) + 0.1
    return TabularGame(
        seed_names=["s"],
        seed_class=["harmful"],
        strategy_names=["k0", "k1"],
        response_names=["y0", "y1"],
        prompt_names=["x"] if shared else ["x0", "x1"],
        xi=torch.ones(1, dtype=torch.float64),
        prompt_of=torch.tensor([[0, 0]] if shared else [[0, 1]]),
        att_score=10 * r(1, 2, 2),
        def_score=10 * r(1, 2, 2),
        ref_att=ref_att / ref_att.sum(-1, keepdim=True),
        ref_def=ref_def / ref_def.sum(-1, keepdim=True),
        beta=beta,
        reward_scale=0.1,
    )


def _grid_objective(p, values, ref, beta):
    """Regularised objective of the 2-point distribution (p, 1−p), straight from its definition."""
    kl = p * torch.log(p / ref[0]) + (1 - p) * torch.log((1 - p) / ref[1])
    return p * values[0] + (1 - p) * values[1] - beta * kl


@pytest.mark.parametrize("case", range(4))
def test_solver_matches_brute_force_grid_on_coupled_2x2_games(case):
    """Grid over the joint simplex (p = ρ(k0), q = π(y0|x)); each player's gap by grid maximisation."""
    game = _two_by_two(torch.Generator().manual_seed(case), beta=[0.3, 0.5, 1.0, 2.0][case], shared=True)
    n = 1201
    grid = torch.linspace(0, 1, n, dtype=torch.float64)[1:-1]  # open simplex
    P, Q = grid[:, None], grid[None, :]
    Ra, Rd, b = game.att_reward[0], game.def_reward[0], game.beta
    # attacker: value of strategy k given q;  defender: payoff of response y given p (here q(x) = 1)
    att_values = [Q * Ra[k, 0] + (1 - Q) * Ra[k, 1] for k in range(2)]
    def_values = [P * Rd[0, y] + (1 - P) * Rd[1, y] for y in range(2)]
    U_att = _grid_objective(P, att_values, game.ref_att[0], b)  # [p, q]
    U_def = _grid_objective(Q, def_values, game.ref_def[0], b)
    gap = torch.maximum(U_att.max(0, keepdim=True).values - U_att, U_def.max(1, keepdim=True).values - U_def)
    i, j = divmod(int(gap.argmin()), gap.shape[1])
    eq = solve(game)
    h = 1.0 / (n - 1)
    assert eq.certified
    assert abs(float(grid[i]) - float(eq.rho[0, 0])) <= 2 * h
    assert abs(float(grid[j]) - float(eq.pi[0, 0])) <= 2 * h


@pytest.mark.parametrize("case", range(3))
def test_solver_matches_direct_maximisation_on_decoupled_2x2_games(case):
    game = _two_by_two(torch.Generator().manual_seed(100 + case), beta=[0.2, 0.5, 1.0][case], shared=False)
    eq = solve(game)
    grid = torch.linspace(0, 1, 200001, dtype=torch.float64)[1:-1]
    for x in range(2):  # the defender at each prompt, on its own (its posterior is a point mass)
        U = _grid_objective(grid, [game.def_reward[0, x, y] for y in range(2)], game.ref_def[x], game.beta)
        assert abs(float(grid[U.argmax()]) - float(eq.pi[x, 0])) <= 2e-5
        assert float(U.max()) == pytest.approx(
            float(objective(eq.pi[x], game.def_reward[0, x], game.ref_def[x], game.beta)), abs=1e-9
        )
    values = [(eq.pi[k] * game.att_reward[0, k]).sum() for k in range(2)]  # attacker against π*
    U = _grid_objective(grid, values, game.ref_att[0], game.beta)
    assert abs(float(grid[U.argmax()]) - float(eq.rho[0, 0])) <= 2e-5


def test_default_game_is_coupled_mixed_and_certified():
    game = default_game()
    assert not game.is_decoupled() and default_game(GameConfig(shared_prompts=False)).is_decoupled()
    eq = solve(game)
    assert eq.certified
    # genuinely mixed: TV ≤ 0.05 is not reachable by a near-deterministic policy
    assert float(eq.rho.max(-1).values.max()) < 0.6 and float(eq.pi.max(-1).values.min()) < 0.6


# ---- fixed points of the update rules, exactly (expected loss over pairs and verdicts) -------------------


def _expected_pair_loss(loss_fn, logits, ref_logp, rewards, prefer, mu, beta_loss):
    """E over y1, y2 ~ μ and the verdict of the per-pair loss, for one context."""
    lp = torch.log_softmax(logits, -1)
    total = 0.0
    for a in range(len(rewards)):
        for b in range(len(rewards)):
            if a == b:
                continue
            p = prefer(rewards[a], rewards[b])
            pair = loss_fn(lp[a : a + 1], lp[b : b + 1], ref_logp[a : a + 1], ref_logp[b : b + 1], beta_loss)
            total = total + mu[a] * mu[b] * p * pair.sum()
    return total


@pytest.mark.parametrize("loss", ["dpo", "ipo"])
def test_anchored_md_rests_at_pi_star_and_authors_ema_does_not(loss):
    """With π = π̄ (rest), the anchored reference π̄^(1−η) π_ref^η and β_loss = matched β/η, the expected
    gradient vanishes exactly at π* ∝ π_ref·exp(R/β). With the authors' reference (the EMA itself) the
    gradient at π* is not zero: π* is not their rest point."""
    torch.manual_seed(0)
    beta, eta = 0.5, 0.5
    rewards = torch.tensor([0.2, 1.6, 0.8], dtype=torch.float64)  # a harmful direct prompt (scale 0.2)
    ref = torch.tensor([0.5, 0.2, 0.3], dtype=torch.float64)
    judge = make_judge(JudgeConfig(), loss, score_low=-0.2, score_high=2.0)
    fn = dpo_loss if loss == "dpo" else ipo_loss
    pi_star = torch.softmax(torch.log(ref) + rewards / beta, -1)
    mu = pi_star  # at rest the EMA sampler equals the policy

    def grad(reference, beta_loss):
        logits = torch.log(pi_star).clone().requires_grad_(True)
        _expected_pair_loss(fn, logits, reference, rewards, judge.preference, mu, beta_loss).backward()
        return logits.grad

    anchored = (1 - eta) * torch.log(pi_star) + eta * torch.log(ref)
    assert grad(anchored, judge.loss_beta(beta, loss) / eta).abs().max() < 1e-12
    assert grad(torch.log(pi_star), judge.loss_beta(beta, loss)).abs().max() > 1e-3


def test_judge_noise_is_the_game_at_a_larger_beta():
    """With probability ν the judge answers at random: every reward gap shrinks by (1 − ν) in expectation,
    exactly for the linear link and for pointwise scores (the game at β/(1 − ν))."""
    nu, low, high = 0.2, -0.2, 2.0
    r_a, r_b = (
        torch.tensor([1.6, 0.2, 0.0], dtype=torch.float64),
        torch.tensor([0.2, 1.8, 0.0], dtype=torch.float64),
    )
    linear = make_judge(JudgeConfig(link="linear", noise=nu), "ipo", score_low=low, score_high=high)
    expected = 0.5 + (1 - nu) * (r_a - r_b) / (2 * (high - low))
    torch.testing.assert_close(linear.preference(r_a, r_b), expected)
    bt = make_judge(JudgeConfig(link="bt", noise=nu), "dpo", score_low=low, score_high=high)
    torch.testing.assert_close(bt.preference(r_a, r_b), (1 - nu) * torch.sigmoid(r_a - r_b) + nu / 2)
    scores = bt.score(torch.full((200_000,), 1.6, dtype=torch.float64), torch.Generator().manual_seed(0))
    assert float(scores.mean()) == pytest.approx((1 - nu) * 1.6 + nu * (low + high) / 2, abs=5e-3)
    hard = make_judge(JudgeConfig(link="hard"), "dpo", score_low=low, score_high=high)
    wins, usable = hard.verdict(r_a, r_b, torch.Generator().manual_seed(0))
    assert wins.tolist()[:2] == [True, False] and usable.tolist() == [True, True, False]  # ties: no pair


# ---- the training loop uses the project's losses and EMA ---------------------------------------------------


def test_training_calls_the_project_losses_and_ema(monkeypatch):
    calls = {"dpo": 0, "ipo": 0, "grpo": 0, "ema": 0}

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(training, "dpo_loss", spy("dpo", training.dpo_loss))
    monkeypatch.setattr(training, "ipo_loss", spy("ipo", training.ipo_loss))
    monkeypatch.setattr(training, "grpo_loss", spy("grpo", training.grpo_loss))
    from advgame.ema import ParamEMA

    monkeypatch.setattr(ParamEMA, "update", spy("ema", ParamEMA.update))
    game = default_game()
    eq = solve(game)
    cfg = TrainConfig(steps=3, eval_every=1, groups_per_seed=8)
    for method in ["dpo_md", "ipo_md", "grpo"]:
        curves = train(game, method, cfg, JudgeConfig(), eq)
        assert len(curves.steps) == 4
    assert calls == {"dpo": 6, "ipo": 6, "grpo": 6, "ema": 18}


# ---- acceptance: the MD variants converge on the default game --------------------------------------------


@pytest.mark.parametrize("method", ["dpo_md", "ipo_md"])
def test_md_variants_reach_the_equilibrium_on_the_default_game(method):
    """Default game, exact judgments (noise 0), the documented budget (TrainConfig().steps)."""
    game = default_game()
    eq = solve(game)
    curves = train(game, method, TrainConfig(), JudgeConfig(noise=0.0), eq)
    assert curves.steps[-1] == TrainConfig().steps
    assert curves.tv_attacker[-1] <= 0.05 and curves.tv_defender[-1] <= 0.05, (
        curves.tv_attacker[-1],
        curves.tv_defender[-1],
    )


def test_authors_ema_reference_heads_to_the_unregularised_equilibrium():
    game = default_game()
    eq, unreg = solve(game), solve(game, beta=game.beta / 100)
    curves = train(game, "dpo_md_ema", TrainConfig(steps=800), JudgeConfig(), eq)
    tv = lambda e: max(training.tv_distance(curves.rho, e.rho), training.tv_distance(curves.pi, e.pi))
    assert tv(eq) > 0.3 and tv(unreg) < 0.1


def test_cli_writes_plot_and_json_with_every_method(tmp_path, capsys):
    assert run_main(["run", "--out", str(tmp_path), "--steps", "20", "--seeds", "1", "--noise", "0.2"]) == 0
    png, js = tmp_path / "testbed_noise0.2.png", tmp_path / "testbed_noise0.2.json"
    assert png.stat().st_size > 10_000
    results = json.loads(js.read_text())
    assert set(results["methods"]) == set(training.METHODS)
    assert results["config"]["judge"]["noise"] == 0.2
    for m in results["methods"].values():
        assert len(m["tv_attacker"][0]) == len(m["steps"]) == 3
        assert m["summary"]["verdict"] in {"converges", "oscillates", "stalls"}
    assert "DPO-MD (anchored)" in capsys.readouterr().out
