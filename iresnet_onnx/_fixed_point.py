r"""The fixed-point solve x = y − g(x) as a free function, and its implicit gradient.

Like zuko's ``bisection``: the solver takes g as a callable ``g(x, *phi)`` with its parameters
``phi`` passed apart, runs without autograd, and :class:`FixedPoint` attaches the gradient of the
solution by the implicit function theorem instead of differentiating through every step:

    x* = y − g(x*, φ)  ⇒  dx* = (I + J_g)⁻¹ (dy − ∂g/∂φ dφ),

so backward solves wᵀ(I + J_g) = uᵀ by the same kind of fixed-point iteration (w = u − J_gᵀw,
a contraction because Lip(g) < 1), then ∂L/∂y = w and ∂L/∂φ = −(∂g/∂φ)ᵀw.

Stopping rule (the same in eager, TorchScript and every graph): x₀ = y, x_{k+1} = y − g(x_k), row by row. A row stops at its first step
whose residual max(|x_{k+1} − x_k| − rtol·|x_k|) over the row is ≤ atol — or is NaN, which never
counts as converged — while the others go on, so a row's result never depends on its batch and
the work follows the rows. ``iterations`` is the most steps a row took, ``residual`` the largest
final row residual.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

__all__ = [
    "FixedPoint",
    "FixedPointResult",
    "adjoint_solve",
    "fixed_point",
    "implicit_gradients",
    "solve",
]


class FixedPointResult(NamedTuple):
    x: Tensor
    """The solution, shaped like y."""
    iterations: Tensor
    """0-d int64: the most fixed-point steps any row took."""
    residual: Tensor
    """0-d: the largest final row residual (NaN if a row blew up); converged ⇔ ≤ atol."""


COMPACT_ROWS = 64
"""The fewest stopped rows worth taking out of the active set (see :func:`solve`)."""


def _row_residuals(x_next: Tensor, x: Tensor, rtol: float) -> Tensor:
    """max over each row of |x_next − x| − rtol·|x|: one ReduceMax node in the exported Loop."""
    return torch.amax(_excess(x_next, x, rtol), dim=-1)


def _excess(x_next: Tensor, x: Tensor, rtol: float) -> Tensor:
    """|x_next − x| − rtol·|x| elementwise, in four ops where the formula takes six: at batch 1
    each op's dispatch costs about what its arithmetic does, and the test runs at every step."""
    return (x_next - x).abs_().sub_(torch.abs(x), alpha=rtol)


def _stop_in_place(
    x_next: Tensor, r_next: Tensor, running: Tensor, x_done: Tensor, r_done: Tensor, atol: float
) -> tuple[Tensor, Tensor, Tensor]:
    """``(running, x_done, r_done)`` after a step: rows that stop now keep this step's value and
    residual (a NaN makes `>` false, so its row stops, as with the ONNX Greater)."""
    still = (r_next > atol) & running
    stopped_now = running ^ still
    x_done = torch.where(stopped_now.unsqueeze(-1), x_next, x_done)
    return still, x_done, torch.where(stopped_now, r_next, r_done)


def _merge_in_place(
    running: Tensor, x: Tensor, r: Tensor, x_done: Tensor, r_done: Tensor
) -> tuple[Tensor, Tensor]:
    """The results at maxiter: the running rows' last step, the stopped rows' own."""
    return torch.where(running.unsqueeze(-1), x, x_done), torch.where(running, r, r_done)


def _stopping(r_next: Tensor, running: Optional[Tensor], atol: float) -> tuple[Tensor, Tensor]:
    """``(the active rows still running, the indices of those that stop at this step)``, given
    which ran into it (``running``; None: all); a NaN residual stops its row (`>` is false)."""
    still = r_next > atol if running is None else (r_next > atol) & running
    stopped_now = ~still if running is None else running ^ still
    return still, stopped_now.nonzero().squeeze(-1)


def _set_aside(
    x: Tensor, residuals: Tensor, index: Optional[Tensor], rows: Tensor, x_next: Tensor,
    r_next: Tensor,
) -> None:  # fmt: skip
    """Write the active ``rows`` of this step (``x_next``, ``r_next``) to their original rows of
    the results ``x`` and ``residuals`` (``index``: each active row's original row, None while
    every row is active)."""
    to = rows if index is None else index.index_select(0, rows)
    x.index_copy_(0, to, x_next.index_select(0, rows))
    residuals.index_copy_(0, to, r_next.index_select(0, rows))


def solve(
    g: Callable[[Tensor], Tensor], y: Tensor, maxiter: int, atol: float, rtol: float
) -> FixedPointResult:
    """x with x + g(x) = y by fixed-point iteration, row by row (see the module docstring), without
    autograd. ``y`` is ``[..., n]``; each row of its flattened ``[rows, n]`` form stops on its own.

    How a stopped row keeps the value and residual of its stopping step while the others run on
    depends on the batch: see :func:`_solve_in_place` (fewer than 2·:data:`COMPACT_ROWS` rows)
    and :func:`_solve_set_aside`."""
    # every tensor op outside the steps costs a dispatch per block: none that the shape spares
    width = y.shape[-1]
    flat = y if y.dim() == 2 else y.reshape(-1, width)
    rows = flat.shape[0]
    if rows == 0 or maxiter < 1:
        residual = y.new_zeros(()) if rows == 0 else y.new_full((), math.inf)
        return FixedPointResult(y, torch.tensor(0, device=y.device), residual)
    if rows == 1:
        x, steps, residual = _solve_one_row(g, flat, maxiter, atol, rtol)
    elif rows < 2 * COMPACT_ROWS:
        x, steps, residual = _solve_in_place(g, flat, maxiter, atol, rtol)
    else:
        x, steps, residual = _solve_set_aside(g, flat, maxiter, atol, rtol)
    return FixedPointResult(x if x.shape == y.shape else x.reshape(y.shape), steps, residual)


def _solve_in_place(
    g: Callable[[Tensor], Tensor], y: Tensor, maxiter: int, atol: float, rtol: float
) -> FixedPointResult:
    """:func:`solve` for a small batch: a stopped row keeps its stopping step's value by a select
    over the batch at each later step (one elementwise op per tensor, cheaper at this size than
    copying rows) and runs on with the others, its further steps ignored."""
    x, r = y, y.new_full(y.shape[:1], math.inf)
    running = x_done = r_done = None  # None while every row runs
    k = 0
    while k < maxiter:
        x_next = y - g(x)
        r_next = _row_residuals(x_next, x, rtol)
        k += 1
        if running is None:
            x, r = x_next, r_next
            if r_next.amin().item() > atol:  # (a NaN residual stops its row: `>` is false)
                continue
            running, x_done, r_done = r_next > atol, x_next, r_next
        else:
            running, x_done, r_done = _stop_in_place(x_next, r_next, running, x_done, r_done, atol)
            x, r = x_next, r_next
        if not bool(running.any()):
            return FixedPointResult(x_done, torch.tensor(k, device=y.device), r_done.amax())
    steps = torch.tensor(k, device=y.device)
    if running is None:
        return FixedPointResult(x, steps, r.amax())
    x, r = _merge_in_place(running, x, r, x_done, r_done)  # maxiter
    return FixedPointResult(x, steps, r.amax())


def _solve_set_aside(
    g: Callable[[Tensor], Tensor], y: Tensor, maxiter: int, atol: float, rtol: float
) -> FixedPointResult:
    """:func:`solve` for a large batch: a row that stops has its value and residual copied to the
    results at once (those rows alone, where a select over the batch would cost an elementwise
    pass per step) and runs on with the others, its further steps ignored. Stopped rows leave
    the active set when at least half of it, and at least :data:`COMPACT_ROWS` rows, have
    stopped: taking rows out costs a gather per tensor, more than it saves in g unless it
    removes much of its work (rows tend to stop within a few steps of each other)."""
    rows = y.shape[0]
    y_active, x_active, r_active = y, y, y.new_full((rows,), math.inf)
    # the results (None until a row stops before the others); each active row's original row
    # (None while every row is active)
    x = residuals = index = None
    running, left = None, rows  # which active rows still run (None while all do), how many
    k = 0
    while k < maxiter:
        x_next = y_active - g(x_active)
        r_next = _row_residuals(x_next, x_active, rtol)
        x_active, r_active, k = x_next, r_next, k + 1
        if running is None and r_next.amin().item() > atol:  # (NaN: `>` is false, it stops)
            continue
        still, stop = _stopping(r_next, running, atol)
        if stop.numel() == left and x is None:  # every row stops here: this step is the result
            break
        if x is None:
            x, residuals = torch.empty_like(y), y.new_empty((rows,))
        _set_aside(x, residuals, index, stop, x_next, r_next)
        running, left = still, left - stop.numel()
        if left == 0:
            break
        stopped = running.shape[0] - left
        if stopped < COMPACT_ROWS or left > stopped:
            continue
        keep = running.nonzero().squeeze(-1)
        index = keep if index is None else index.index_select(0, keep)
        x_active, y_active, r_active = (t.index_select(0, keep) for t in (x_next, y_active, r_next))
        running = None
    steps = torch.tensor(k, device=y.device)
    if x is None:  # no row stopped before the others
        return FixedPointResult(x_active, steps, r_active.amax())
    if left > 0:  # maxiter, with rows running: their last step
        if running is None:  # every active row (rows were taken out, so index is set)
            x.index_copy_(0, index, x_active)
            residuals.index_copy_(0, index, r_active)
        else:
            _set_aside(x, residuals, index, running.nonzero().squeeze(-1), x_active, r_active)
    return FixedPointResult(x, steps, residuals.amax())


def _solve_one_row(
    g: Callable[[Tensor], Tensor], y: Tensor, maxiter: int, atol: float, rtol: float
) -> FixedPointResult:
    """:func:`solve` for one row: the row residual is the residual, a reduction over everything
    (no per-row state to keep), and the loop is the plain one a user would write."""
    x, k = y, 0
    while True:
        x_next = y - g(x)
        residual = torch.amax(_excess(x_next, x, rtol))
        x, k = x_next, k + 1
        if k == maxiter or not residual.item() > atol:  # NaN stops too, as in _stop_in_place
            return FixedPointResult(x, torch.tensor(k, device=y.device), residual)


def fixed_point(
    g: Callable[..., Tensor],
    y: Tensor,
    maxiter: int,
    atol: float,
    rtol: float,
    phi: tuple[Tensor, ...] = (),
) -> FixedPointResult:
    r"""x with x + g(x, *phi) = y (see the module docstring); differentiable in ``y`` and ``phi``.

    Args:
        g: the residual branch, ``g(x, *phi) -> Tensor`` like x, a contraction in x.
        y: ``[..., n]``.
        maxiter, atol, rtol: the stopping rule.
        phi: the tensors g depends on that gradients should reach (weights).

    Returns:
        :class:`FixedPointResult`; only ``x`` carries a gradient.

    Example::

        >>> g = lambda x, w: torch.tanh(x @ w)
        >>> w = 0.5 * torch.eye(3, requires_grad=True)
        >>> x = fixed_point(g, torch.ones(2, 3), 100, 1e-6, 1e-6, (w,)).x
        >>> x.sum().backward()  # reaches w through the implicit function theorem
    """
    step = (lambda x: g(x, *phi)) if phi else g
    if not torch.is_grad_enabled():
        return solve(step, y, maxiter, atol, rtol)
    if y.requires_grad or any(p.requires_grad for p in phi):
        x, iterations, residual = FixedPoint.apply(g, y, maxiter, atol, rtol, *phi)
        return FixedPointResult(x, iterations, residual)
    with torch.no_grad():  # g may hold tensors that require grad: no graph of the steps
        return solve(step, y, maxiter, atol, rtol)


class FixedPoint(torch.autograd.Function):
    """``FixedPoint.apply(g, y, maxiter, atol, rtol, *phi) -> (x, iterations, residual)``: the solve
    in forward, the implicit gradient in backward (see the module docstring)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, g: Callable[..., Tensor], y: Tensor, maxiter: int, atol: float, rtol: float,
        *phi: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        with torch.no_grad():
            result = solve(lambda x: g(x, *phi), y, maxiter, atol, rtol)
        ctx.g, ctx.settings = g, (maxiter, atol, rtol)
        ctx.save_for_backward(result.x, *phi)
        ctx.mark_non_differentiable(result.iterations, result.residual)
        return result.x, result.iterations, result.residual

    @staticmethod
    def backward(ctx: Any, grad_x: Tensor, *_: Any) -> tuple[Any, ...]:
        x, *phi = ctx.saved_tensors
        grad_y, grad_phi = implicit_gradients(
            ctx.g, x, grad_x, tuple(phi), ctx.settings, ctx.needs_input_grad[5:]
        )
        return (None, grad_y if ctx.needs_input_grad[1] else None, None, None, None, *grad_phi)


def implicit_gradients(
    g: Callable[..., Tensor],
    x: Tensor,
    grad_x: Tensor,
    phi: tuple[Tensor, ...],
    settings: tuple[int, float, float],
    needs_phi: tuple[bool, ...] | None = None,
) -> tuple[Tensor, list[Tensor | None]]:
    """``(∂L/∂y, [∂L/∂φ…])`` at the solution ``x`` of x = y − g(x, *φ), given ∂L/∂x: w with
    w = ∂L/∂x − J_gᵀw (:func:`adjoint_solve`, J_gᵀw by autograd), then ∂L/∂y = w and
    ∂L/∂φ = −(∂g/∂φ)ᵀw (None where ``needs_phi`` says no gradient is wanted)."""
    needs_phi = tuple(needs_phi) if needs_phi is not None else (True,) * len(phi)
    with torch.enable_grad():
        z = x.detach().requires_grad_()
        leaves = [p.detach().requires_grad_(need) for p, need in zip(phi, needs_phi)]
        gz = g(z, *leaves)
        w = adjoint_solve(
            lambda w: torch.autograd.grad(gz, z, w, retain_graph=True)[0], grad_x, *settings
        )
        wanted = [leaf for leaf in leaves if leaf.requires_grad]
        grads = iter(torch.autograd.grad(gz, wanted, -w, allow_unused=True) if wanted else ())
    return w, [next(grads) if need else None for need in needs_phi]


def adjoint_solve(
    vjp: Callable[[Tensor], Tensor], u: Tensor, maxiter: int, atol: float, rtol: float
) -> Tensor:
    """w with w = u − J_gᵀw at the solution (``vjp(w) = J_gᵀw``), by fixed-point iteration — a
    contraction like the forward solve; its stopping rule, batch-wide."""
    w = u
    for _ in range(maxiter):
        w_next = u - vjp(w)
        done = bool((w_next - w).abs().max() <= atol + rtol * w.abs().max())
        w = w_next
        if done:
            break
    return w
