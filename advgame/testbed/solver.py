"""The KL-regularised equilibrium of a `TabularGame`, and its certificate (exploitability).

Objectives (reverse KL, the game of the paper notes §1.2):

    U_att(ρ, π) = Σ_s ξ_s [ Σ_k ρ(k|s) Q(s,k; π) − β KL(ρ(·|s) ‖ ρ_ref(·|s)) ],
                  Q(s,k; π) = Σ_y π(y|x_sk) R_att(s,k,y)      (R_att = −1·scale if unfaithful, whatever y)
    U_def(ρ, π) = Σ_x q(x) [ Σ_y π(y|x) R̄(x,y) − β KL(π(·|x) ‖ π_ref(·|x)) ],
                  q(x) = Σ_{(s,k)→x} ξ_s ρ(k|s),   R̄(x,y) = Σ_{(s,k)→x} ξ_s ρ(k|s) R_def(s,k,y) / q(x)

Best responses are closed form:  π(y|x) ∝ π_ref(y|x) exp(R̄(x,y)/β),  ρ(k|s) ∝ ρ_ref(k|s) exp(Q(s,k)/β),
and the regularised optimum of each context is β·log Z. The certificate of a joint policy is, per player,

    gap = Σ_context weight · (β log Z − current regularised value)  ≥ 0,  = 0 iff it is a best response,

and exploitability = gap_att + gap_def. An equilibrium is a joint policy with both gaps 0.

Equilibrium concept: the attacker is scored with the *expectation* over the defender's policy (Q above),
not with the optimistic best-of-D response of the authors' code. With the expectation the game has the
clean theory (concave per player, closed-form best responses). Training with `optimistic=True` targets a
different point (see docs/testbed.md).

Decoupled games (each prompt produced by one (s, k)): R̄ does not depend on ρ, so π* = BR(·) and
ρ* = BR(π*) in one pass. Coupled games (shared prompts): ρ* is a fixed point of ρ ↦ BR_att(BR_def(ρ)),
found by damped iteration then Newton on the log-probabilities, with a continuation in β from a large β
(where the map is a contraction) if the direct attempt fails. Uniqueness is not claimed for coupled games:
the certificate says the returned point is an equilibrium.

`kl="forward"` swaps KL(p‖ref) for KL(ref‖p) in both objectives: the regulariser that GRPO's k3 penalty
optimises when it is differentiated as a loss (E_{y~π}[∇ k3] = ∇ KL(π_ref‖π)). Its best response is
p_a = β ref_a / (λ − v_a) with λ > max v such that Σ p = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from advgame.testbed.game import TabularGame

KL = Literal["reverse", "forward"]


# ---- one context: best response, value, objective -------------------------------------------------------
def best_response(values: torch.Tensor, ref: torch.Tensor, beta: float, kl: KL = "reverse") -> torch.Tensor:
    """argmax_p p·v − β KL, row-wise over the last dimension."""
    return torch.exp(log_best_response(values, ref, beta, kl))


def log_best_response(
    values: torch.Tensor, ref: torch.Tensor, beta: float, kl: KL = "reverse"
) -> torch.Tensor:
    """log of `best_response`, computed without underflow."""
    if kl == "reverse":
        return torch.log_softmax(torch.log(ref) + values / beta, dim=-1)
    lam = _forward_multiplier(values, ref, beta)
    return torch.log(beta * ref) - torch.log(lam[..., None] - values)


def _forward_multiplier(values: torch.Tensor, ref: torch.Tensor, beta: float) -> torch.Tensor:
    """λ with Σ_a β ref_a / (λ − v_a) = 1; it lies in (max v, max v + β]. Bisection, then two Newton
    steps from the (detached) root so autograd sees the implicit derivative."""
    vmax = values.detach().max(dim=-1).values
    lo, hi = vmax.clone(), vmax + beta

    def f(lam, v):
        return (beta * ref / (lam[..., None] - v)).sum(-1) - 1.0

    v_d = values.detach()
    for _ in range(64):  # the bracket has width β: 2^-64·β, then Newton polishes
        mid = 0.5 * (lo + hi)
        above = f(mid, v_d) > 0  # f decreases in λ: f > 0 means λ is still too small
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    lam = 0.5 * (lo + hi)
    for _ in range(2):
        diff = lam[..., None] - values
        fval = (beta * ref / diff).sum(-1) - 1.0
        fprime = -(beta * ref / diff**2).sum(-1)
        lam = lam - fval / fprime
    return lam


def objective(policy: torch.Tensor, values: torch.Tensor, ref: torch.Tensor, beta: float, kl: KL = "reverse"):
    """p·v − β KL(p‖ref) (reverse) or p·v − β KL(ref‖p) (forward), row-wise."""
    if kl == "reverse":
        reg = (policy * (torch.log(policy.clamp_min(1e-300)) - torch.log(ref))).sum(-1)
    else:
        reg = (ref * (torch.log(ref) - torch.log(policy.clamp_min(1e-300)))).sum(-1)
    return (policy * values).sum(-1) - beta * reg


def optimal_value(values: torch.Tensor, ref: torch.Tensor, beta: float, kl: KL = "reverse") -> torch.Tensor:
    """max_p of `objective`: β log Σ ref exp(v/β) for the reverse KL."""
    if kl == "reverse":
        return beta * torch.logsumexp(torch.log(ref) + values / beta, dim=-1)
    return objective(best_response(values, ref, beta, kl), values, ref, beta, kl)


# ---- the game: what each player faces given the other ------------------------------------------------------
def attacker_values(game: TabularGame, pi: torch.Tensor) -> torch.Tensor:
    """Q(s,k) = E_{y~π(·|x_sk)} R_att(s,k,y); the patched constant for unfaithful rewrites. [S, K]"""
    pi_sk = pi[game.prompt_index]  # [S, K, M]
    expected = (pi_sk * game.att_reward).sum(-1)
    return torch.where(game.faithful, expected, game.att_reward[..., 0])


def defender_values(game: TabularGame, rho: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(R̄ [X, M], q [X]): posterior-mean defender reward at each prompt, and the prompt's probability."""
    w = (game.xi[:, None] * rho * game.faithful).reshape(-1)  # [S*K]
    idx = game.prompt_index.reshape(-1)
    X, M = game.num_prompts, game.num_responses
    q = torch.zeros(X, dtype=rho.dtype).index_add(0, idx, w)
    weighted = torch.zeros(X, M, dtype=rho.dtype).index_add(
        0, idx, w[:, None] * game.def_reward.reshape(-1, M)
    )
    return weighted / q[:, None].clamp_min(1e-300), q


@dataclass
class Gaps:
    attacker: float
    defender: float

    @property
    def total(self) -> float:
        return self.attacker + self.defender


def exploitability(
    game: TabularGame, rho: torch.Tensor, pi: torch.Tensor, *, beta: float | None = None, kl: KL = "reverse"
) -> Gaps:
    """Each player's gain from switching to its regularised best response, in reward units (≥ 0)."""
    beta = game.beta if beta is None else beta
    rho, pi = rho.to(torch.float64), pi.to(torch.float64)
    Q = attacker_values(game, pi)
    gap_att = (
        game.xi * (optimal_value(Q, game.ref_att, beta, kl) - objective(rho, Q, game.ref_att, beta, kl))
    ).sum()
    Rbar, q = defender_values(game, rho)
    gap_def = (
        q * (optimal_value(Rbar, game.ref_def, beta, kl) - objective(pi, Rbar, game.ref_def, beta, kl))
    ).sum()
    return Gaps(attacker=float(gap_att), defender=float(gap_def))


# ---- the solver ------------------------------------------------------------------------------------------
@dataclass
class Equilibrium:
    rho: torch.Tensor  # [S, K] attacker
    pi: torch.Tensor  # [X, M] defender
    gaps: Gaps
    beta: float
    kl: str

    @property
    def certified(self) -> bool:
        return max(self.gaps.attacker, self.gaps.defender) <= 1e-8


class SolverError(RuntimeError):
    pass


def solve(
    game: TabularGame, *, beta: float | None = None, kl: KL = "reverse", tol: float = 1e-13
) -> Equilibrium:
    """The regularised equilibrium (ρ*, π*), with its certificate."""
    beta = game.beta if beta is None else beta
    if game.is_decoupled():
        pi = best_response(defender_values(game, game.ref_att)[0], game.ref_def, beta, kl)
        rho = best_response(attacker_values(game, pi), game.ref_att, beta, kl)
        return Equilibrium(rho, pi, exploitability(game, rho, pi, beta=beta, kl=kl), beta, kl)

    z = _fixed_point(game, beta, kl, torch.log(game.ref_att), tol)
    if z is None:  # continuation in β: from a large β (a contraction) down to the target
        reward_span = float(game.att_reward.max() - game.att_reward.min()) + float(
            game.def_reward.abs().max()
        )
        start = max(beta, 4.0 * reward_span)
        z = torch.log(game.ref_att)
        for b in torch.logspace(
            torch.log10(torch.tensor(start)), torch.log10(torch.tensor(beta)), 40
        ).tolist():
            z = _fixed_point(game, b, kl, z, tol if b == beta else 1e-9)
            if z is None:
                raise SolverError(f"continuation lost the equilibrium at beta={b:.4g}")
    rho = torch.exp(z)
    pi = best_response(defender_values(game, rho)[0], game.ref_def, beta, kl)
    return Equilibrium(rho, pi, exploitability(game, rho, pi, beta=beta, kl=kl), beta, kl)


def _fixed_point(game: TabularGame, beta: float, kl: KL, z0: torch.Tensor, tol: float) -> torch.Tensor | None:
    """Solve z = F(z), F = log BR_att(BR_def(exp z)), over attacker log-probabilities: Newton from z0,
    and if that fails, a damped iteration to get closer first. None if both fail."""

    def F(z: torch.Tensor) -> torch.Tensor:
        rho = torch.softmax(z, dim=-1)
        pi = best_response(defender_values(game, rho)[0], game.ref_def, beta, kl)
        return log_best_response(attacker_values(game, pi), game.ref_att, beta, kl)

    def residual(z: torch.Tensor) -> float:  # in probability space: log-probs of e^-300 need not be exact
        return (torch.exp(F(z)) - torch.exp(z)).abs().max().item()

    z = torch.log_softmax(z0, dim=-1)
    solution = _newton(F, residual, z, tol)
    if solution is not None:
        return solution
    # damped (Krasnosel'skii–Mann) iteration: converges outright when F contracts, else gets closer
    step, res = 1.0, residual(z)
    for _ in range(300):
        if res < 1e-6:
            break
        trial = torch.log_softmax(z + step * (F(z) - z), dim=-1)
        trial_res = residual(trial)
        if trial_res < res:
            z, res, step = trial, trial_res, min(1.0, step * 1.5)
        else:
            step *= 0.5
            if step < 1e-4:
                break
    return _newton(F, residual, z, tol)


def _newton(F, residual, z: torch.Tensor, tol: float, max_iter: int = 40) -> torch.Tensor | None:
    """Newton on G(z) = F(z) − z with a backtracking line search on the residual."""
    n, shape = z.numel(), z.shape
    for _ in range(max_iter):
        g = (F(z) - z).reshape(-1)
        base = residual(z)
        if base < tol:
            return z
        J = torch.autograd.functional.jacobian(lambda v: F(v.reshape(shape)).reshape(-1), z.reshape(-1))
        if not (torch.isfinite(J).all() and torch.isfinite(g).all()):
            return None
        delta = torch.linalg.lstsq(J - torch.eye(n, dtype=z.dtype), -g[:, None]).solution.reshape(z.shape)
        t = 1.0
        while t > 1e-4:
            cand = torch.log_softmax(z + t * delta, dim=-1)
            if residual(cand) < base:
                z = cand
                break
            t *= 0.5
        else:
            return None
    return z if residual(z) < tol else None


# ---- a diagnostic: can plain simultaneous gradient play cycle near the equilibrium? -----------------------
def gradient_play_spectrum(game: TabularGame, eq: Equilibrium) -> dict[str, float]:
    """Eigenvalues λ of the Jacobian, at (ρ*, π*), of the simultaneous gradient field (each player ascends
    its own regularised objective in logit space). All Re λ < 0: plain gradient play converges locally in
    continuous time; max |Im λ|/|Re λ| measures how much it spirals (0: no rotation; ≫ 1: near-cycles)."""
    S, K = eq.rho.shape
    beta, kl = eq.beta, eq.kl

    def field(z: torch.Tensor) -> torch.Tensor:
        za, zd = z[: S * K].reshape(S, K), z[S * K :].reshape(eq.pi.shape)
        rho, pi = torch.softmax(za, -1), torch.softmax(zd, -1)
        u_att = (game.xi * objective(rho, attacker_values(game, pi), game.ref_att, beta, kl)).sum()
        rbar, q = defender_values(game, rho)
        u_def = (q * objective(pi, rbar, game.ref_def, beta, kl)).sum()
        g_att = torch.autograd.grad(u_att, za, create_graph=True)[0]
        g_def = torch.autograd.grad(u_def, zd, create_graph=True)[0]
        return torch.cat([g_att.reshape(-1), g_def.reshape(-1)])

    z = torch.cat([torch.log(eq.rho).reshape(-1), torch.log(eq.pi).reshape(-1)])
    eig = torch.linalg.eigvals(torch.autograd.functional.jacobian(field, z))
    eig = eig[eig.real.abs() > 1e-12]  # drop the softmax shift directions (λ = 0)
    return {
        "max_real": float(eig.real.max()),
        "max_rotation": float((eig.imag.abs() / eig.real.abs()).max()),
    }
