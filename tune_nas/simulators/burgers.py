"""Viscous Burgers' equation on a periodic domain: the field at two later times from its
viscosity and initial condition.

    u_t + (u²/2)_x = ν u_xx,   x ∈ [0, 2π) periodic,
    u(x, 0) = a₁ sin x + b₁ cos x + (a₂ sin 2x + b₂ cos 2x) / 2.

The textbook model of a shock forming against viscosity (fluid dynamics, traffic flow). The
inputs are ``nu`` (log-uniform in [0.05, 0.5]) and ``a1, b1, a2, b2`` (uniform in [-1, 1]);
the output is u at t = 0.5 and t = 1 on 64 evenly spaced points (2 × 64 values).

Method of lines: the conservative form with second-order central differences on
:data:`GRID` points (the discrete mass Σu dx is conserved exactly; at the smallest viscosity
the cell Reynolds number |u|·dx/ν stays below 2, so central differences do not oscillate),
integrated by SciPy's implicit BDF (diffusion makes the system stiff) with the tridiagonal-
periodic Jacobian's sparsity, to a relative tolerance of 1e-6. Checked against the exact
Cole–Hopf solution u = 2νε e^{-νt} sin x / (1 + ε e^{-νt} cos x) (second-order convergence).
"""

from __future__ import annotations

import functools

import numpy as np

VERSION = 1
GRID = 128  #: solver points
OUTPUT_EVERY = 2  #: every 2nd solver point is an output point
TIMES = (0.5, 1.0)
NU_RANGE = (0.05, 0.5)
INPUT_NAMES = ("nu", "a1", "b1", "a2", "b2")
OUTPUT_SHAPE = (len(TIMES), GRID // OUTPUT_EVERY)
OUTPUT_NAMES = tuple(f"u(t={t:g},x={i})" for t in TIMES for i in range(GRID // OUTPUT_EVERY))
DEFAULT_SAMPLES = 4000
RTOL, ATOL = 1e-6, 1e-8


def grid(points: int = GRID) -> np.ndarray:
    return np.arange(points) * (2 * np.pi / points)


def initial_field(a1: float, b1: float, a2: float, b2: float, points: int = GRID) -> np.ndarray:
    x = grid(points)
    return a1 * np.sin(x) + b1 * np.cos(x) + 0.5 * (a2 * np.sin(2 * x) + b2 * np.cos(2 * x))


@functools.lru_cache(maxsize=8)
def _jacobian_sparsity(points: int):
    from scipy.sparse import diags

    return diags([1.0, 1.0, 1.0, 1.0, 1.0], [-(points - 1), -1, 0, 1, points - 1],
                 shape=(points, points), format="csr")


def solve(u0: np.ndarray, nu: float, times=TIMES, rtol: float = RTOL, atol: float = ATOL) -> np.ndarray:
    """u at ``times`` (len(times) × points) from the initial field ``u0`` on a periodic grid."""
    from scipy.integrate import solve_ivp

    points = len(u0)
    dx = 2 * np.pi / points
    c_adv, c_diff = 1.0 / (4 * dx), nu / (dx * dx)

    def rhs(_t, u):
        up, um = np.roll(u, -1), np.roll(u, 1)
        return -c_adv * (up * up - um * um) + c_diff * (up - 2 * u + um)

    sol = solve_ivp(rhs, (0.0, max(times)), np.asarray(u0, dtype=np.float64), method="BDF",
                    t_eval=list(times), rtol=rtol, atol=atol, jac_sparsity=_jacobian_sparsity(points))
    if not sol.success:
        raise RuntimeError(f"burgers: the solver failed ({sol.message}) for nu={nu}")
    return sol.y.T


def simulate(inputs) -> np.ndarray:
    """One run: ``inputs`` = (nu, a1, b1, a2, b2) → u at :data:`TIMES` on the output points
    (:data:`OUTPUT_SHAPE`)."""
    nu, a1, b1, a2, b2 = (float(v) for v in inputs)
    return solve(initial_field(a1, b1, a2, b2), nu)[:, ::OUTPUT_EVERY]


def sample_inputs(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` input rows: nu log-uniform in :data:`NU_RANGE`, the four amplitudes uniform in [-1, 1]."""
    lo, hi = np.log(NU_RANGE[0]), np.log(NU_RANGE[1])
    nu = np.exp(rng.uniform(lo, hi, size=n))
    return np.column_stack([nu, rng.uniform(-1.0, 1.0, size=(n, 4))])
