"""TorchScript's copy of :func:`iresnet_onnx._fixed_point.solve`: TorchScript cannot pass g as a
callable, so a scripted module solves with its own g. The bookkeeping helpers are solve's own;
``test_the_torchscript_copy_takes_the_same_steps`` checks that both take the same steps."""

import math

import torch
from torch import Tensor

from ._fixed_point import (
    _excess,
    _merge_in_place,
    _row_residuals,
    _set_aside,
    _stop_in_place,
    _stopping,
)

__all__ = ["ScriptedSolver"]


class ScriptedSolver:
    """TorchScript's copy of :func:`~iresnet_onnx._fixed_point.solve`, for a module with
    ``g_parameters()``, ``g(x, parameters)`` and ``_compact_rows`` (TorchScript cannot read a
    module-level constant either). A change to solve's loops is made here too."""

    def _scripted_solve(
        self, y: Tensor, maxiter: int, atol: float, rtol: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``solve`` with the module's g, without autograd: the same row-by-row rule, step for
        step, and the same choice of bookkeeping by batch size. TorchScript refines no Optional
        kept across loop steps, so flags stand in for solve's ``is not None`` tests."""
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
        if rows < 2 * self._compact_rows:
            x, steps, residual = self._scripted_in_place(flat, parameters, maxiter, atol, rtol)
        else:
            x, steps, residual = self._scripted_set_aside(flat, parameters, maxiter, atol, rtol)
        return x.reshape(y.shape), steps, residual

    def _scripted_in_place(
        self, y: Tensor, parameters: list[Tensor], maxiter: int, atol: float, rtol: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:func:`_solve_in_place`; ``stopped`` says what its ``running is not None`` says."""
        x, r = y, y.new_full(y.shape[:1], math.inf)
        running = torch.ones(y.shape[:1], dtype=torch.bool, device=y.device)
        x_done, r_done = x, r
        stopped = False
        k = 0
        while k < maxiter:
            x_next = y - self.g(x, parameters)
            r_next = _row_residuals(x_next, x, rtol)
            k += 1
            if not stopped:
                x, r = x_next, r_next
                if r_next.amin().item() > atol:
                    continue
                running, x_done, r_done = r_next > atol, x_next, r_next
                stopped = True
            else:
                running, x_done, r_done = _stop_in_place(
                    x_next, r_next, running, x_done, r_done, atol
                )
                x, r = x_next, r_next
            if not bool(running.any()):
                return x_done, torch.tensor(k, device=y.device), torch.amax(r_done)
        steps = torch.tensor(k, device=y.device)
        if not stopped:
            return x, steps, torch.amax(r)
        x, r = _merge_in_place(running, x, r, x_done, r_done)
        return x, steps, torch.amax(r)

    def _scripted_set_aside(
        self, y: Tensor, parameters: list[Tensor], maxiter: int, atol: float, rtol: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:func:`_solve_set_aside`; ``has_results``, ``taken_out`` and ``stopped`` say what its
        ``x is not None``, ``index is not None`` and ``running is not None`` say."""
        rows = y.shape[0]
        y_active, x_active, r_active = y, y, y.new_full((rows,), math.inf)
        x, residuals, index = y, r_active, torch.arange(0, device=y.device)
        running = torch.ones(rows, dtype=torch.bool, device=y.device)
        has_results = taken_out = stopped = False
        left, k = rows, 0
        while k < maxiter:
            x_next = y_active - self.g(x_active, parameters)
            r_next = _row_residuals(x_next, x_active, rtol)
            x_active, r_active, k = x_next, r_next, k + 1
            if not stopped and r_next.amin().item() > atol:
                continue
            still, stop = _stopping(r_next, running if stopped else None, atol)
            if stop.numel() == left and not has_results:
                break
            if not has_results:
                x, residuals = torch.empty_like(y), y.new_empty((rows,))
                has_results = True
            _set_aside(x, residuals, index if taken_out else None, stop, x_next, r_next)
            running, stopped, left = still, True, left - stop.numel()
            if left == 0:
                break
            if running.shape[0] - left < self._compact_rows or left > running.shape[0] - left:
                continue
            keep = running.nonzero().squeeze(-1)
            index = index.index_select(0, keep) if taken_out else keep
            x_active = x_next.index_select(0, keep)
            y_active = y_active.index_select(0, keep)
            r_active = r_next.index_select(0, keep)
            taken_out, stopped = True, False
        steps = torch.tensor(k, device=y.device)
        if not has_results:
            return x_active, steps, torch.amax(r_active)
        if left > 0 and not stopped:  # every active row (rows were taken out)
            x.index_copy_(0, index, x_active)
            residuals.index_copy_(0, index, r_active)
        elif left > 0:
            rows_left = running.nonzero().squeeze(-1)
            _set_aside(x, residuals, index if taken_out else None, rows_left, x_active, r_active)
        return x, steps, torch.amax(residuals)
