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
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "FixedPoint",
    "FixedPointResult",
    "ScriptedSolver",
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
"""The fewest stopped rows worth taking out of the running set (see :func:`solve`)."""


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


def _take_out(
    x: Tensor, residuals: Tensor, index: Tensor, running: Tensor, x_done: Tensor, r_done: Tensor
) -> tuple[Tensor, Tensor]:
    """Write the stopped rows' results into ``x`` and ``residuals`` at their original rows;
    ``(index of the running rows, their positions among the active rows)``. Positions are found
    once: each boolean-mask index would search the mask again."""
    out = (~running).nonzero().squeeze(-1)
    x.index_copy_(0, index.index_select(0, out), x_done.index_select(0, out))
    residuals.index_copy_(0, index.index_select(0, out), r_done.index_select(0, out))
    keep = running.nonzero().squeeze(-1)
    return index.index_select(0, keep), keep


def _merge_in_place(
    running: Tensor, x_active: Tensor, r_active: Tensor, x_done: Tensor, r_done: Tensor
) -> tuple[Tensor, Tensor]:
    """The active rows' results at maxiter: the running rows' last step, the stopped rows' own."""
    x_active = torch.where(running.unsqueeze(-1), x_active, x_done)
    return x_active, torch.where(running, r_active, r_done)


def solve(
    g: Callable[[Tensor], Tensor], y: Tensor, maxiter: int, atol: float, rtol: float
) -> FixedPointResult:
    """x with x + g(x) = y by fixed-point iteration, row by row (see the module docstring), without
    autograd. ``y`` is ``[..., n]``; each row of its flattened ``[rows, n]`` form stops on its own.

    A stopped row keeps the value and residual of its stopping step (a masked select: one
    elementwise op per tensor) while the running rows go on; stopped rows leave the running set
    only when at least half of it, and at least :data:`COMPACT_ROWS` rows, have stopped. Taking
    rows out costs a gather per tensor, more than it saves in g unless it removes much of its work:
    rows tend to stop within a few steps of each other."""
    # every tensor op outside the steps costs a dispatch per block: none that the shape spares
    width = y.shape[-1]
    flat = y if y.dim() == 2 else y.reshape(-1, width)
    rows = flat.shape[0]
    if rows == 0 or maxiter < 1:
        residual = y.new_zeros(()) if rows == 0 else y.new_full((), math.inf)
        return FixedPointResult(y, torch.tensor(0, device=y.device), residual)
    if rows == 1:
        x, steps, residual = _solve_one_row(g, flat, maxiter, atol, rtol)
        return FixedPointResult(x if x.shape == y.shape else x.reshape(y.shape), steps, residual)
    y_active, x_active = flat, flat
    r_active = flat.new_full((rows,), math.inf)
    # the rows taken out: their results (x, residuals), and each active row's original row (index)
    x = residuals = index = None
    # which active rows still run, and the stopped ones' value and residual at their stopping step
    # (None while every active row runs)
    running = x_done = r_done = None
    k = 0
    while k < maxiter:
        x_next = y_active - g(x_active)
        r_next = _row_residuals(x_next, x_active, rtol)
        k += 1
        # a row runs on while its residual exceeds atol; NaN is not "running" (see _stop_in_place)
        if running is None:
            x_active, r_active = x_next, r_next
            least = r_active if r_active.shape[0] == 1 else r_active.amin()  # one row: no reduction
            if least.item() > atol:
                continue
            running = r_active > atol
            x_done, r_done = x_active, r_active
        else:
            running, x_done, r_done = _stop_in_place(x_next, r_next, running, x_done, r_done, atol)
            x_active, r_active = x_next, r_next
        left = int(running.sum())
        if left == 0 and index is None:  # every row stopped at this step or before: none taken out
            x_active, r_active, running = x_done, r_done, None
            break
        stopped = running.shape[0] - left
        if left > 0 and (stopped < COMPACT_ROWS or left > stopped):
            continue
        # take the stopped rows out: their results go to x and residuals
        if index is None:
            x, residuals = torch.empty_like(flat), flat.new_empty((rows,))
            index = torch.arange(rows, device=y.device)
        index, keep = _take_out(x, residuals, index, running, x_done, r_done)
        running = None
        if left == 0:
            break
        x_active, y_active, r_active = (
            t.index_select(0, keep) for t in (x_active, y_active, r_active)
        )
    steps = torch.tensor(k, device=y.device)
    if running is not None:  # maxiter reached with some active rows stopped, others running
        x_active, r_active = _merge_in_place(running, x_active, r_active, x_done, r_done)
    if index is None:  # no row was taken out
        x_active = x_active if x_active.shape == y.shape else x_active.reshape(y.shape)
        return FixedPointResult(x_active, steps, r_active.amax())
    if index.numel() > 0:  # rows still active at the end (maxiter, or stopped in place)
        x[index] = x_active
        residuals[index] = r_active
    return FixedPointResult(x.reshape(y.shape), steps, residuals.amax())


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


class ScriptedSolver:
    """TorchScript's copy of :func:`solve`, for a module with ``g_parameters()``, ``g(x,
    parameters)`` and ``_compact_rows`` (TorchScript cannot pass g as a callable, nor read a
    module-level constant); kept beside :func:`solve` so that the two change together."""

    def _scripted_solve(
        self, y: Tensor, maxiter: int, atol: float, rtol: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:func:`solve` with the module's g, without autograd: the same row-by-row rule, step for
        step. TorchScript refines no Optional kept across loop steps, so ``taken_out`` and
        ``stopped_in_place`` say what solve's ``index is not None`` and ``running is not None``
        say."""
        parameters = [p.detach() for p in self.g_parameters()]
        width = y.shape[-1]
        flat = y.reshape(-1, width)
        rows = flat.shape[0]
        if rows == 0:
            return y, torch.tensor(0, device=y.device), y.new_zeros(())
        if rows == 1:  # _solve_one_row
            x, k = flat, 0
            residual = flat.new_full((), math.inf)  # as solve's: no step taken, nothing converged
            while k < maxiter:
                x_next = flat - self.g(x, parameters)
                residual = torch.amax(_excess(x_next, x, rtol))
                x, k = x_next, k + 1
                if not residual.item() > atol:
                    break
            return x.reshape(y.shape), torch.tensor(k, device=y.device), residual
        y_active, x_active = flat, flat
        r_active = flat.new_full((rows,), math.inf)
        x, residuals, index = flat, r_active, torch.arange(0, device=y.device)
        running = torch.ones(rows, dtype=torch.bool, device=y.device)
        x_done, r_done = flat, r_active
        taken_out = False
        stopped_in_place = False
        k = 0
        while k < maxiter:
            x_next = y_active - self.g(x_active, parameters)
            r_next = _row_residuals(x_next, x_active, rtol)
            k += 1
            if not stopped_in_place:
                x_active, r_active = x_next, r_next
                # one row: no reduction
                least = r_active if r_active.shape[0] == 1 else r_active.amin()
                if least.item() > atol:
                    continue
                running = r_active > atol
                x_done, r_done = x_active, r_active
                stopped_in_place = True
            else:
                running, x_done, r_done = _stop_in_place(
                    x_next, r_next, running, x_done, r_done, atol
                )
                x_active, r_active = x_next, r_next
            left = int(running.sum())
            if left == 0 and not taken_out:
                x_active, r_active = x_done, r_done
                stopped_in_place = False
                break
            stopped = running.shape[0] - left
            if left > 0 and (stopped < self._compact_rows or left > stopped):
                continue
            if not taken_out:
                x, residuals = torch.empty_like(flat), flat.new_empty((rows,))
                index = torch.arange(rows, device=y.device)
                taken_out = True
            index, keep = _take_out(x, residuals, index, running, x_done, r_done)
            stopped_in_place = False
            if left == 0:
                break
            x_active = x_active.index_select(0, keep)
            y_active = y_active.index_select(0, keep)
            r_active = r_active.index_select(0, keep)
        steps = torch.tensor(k, device=y.device)
        if stopped_in_place:
            x_active, r_active = _merge_in_place(running, x_active, r_active, x_done, r_done)
        if not taken_out:
            return x_active.reshape(y.shape), steps, torch.amax(r_active)
        if index.numel() > 0:
            x[index] = x_active
            residuals[index] = r_active
        return x.reshape(y.shape), steps, torch.amax(residuals)


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
