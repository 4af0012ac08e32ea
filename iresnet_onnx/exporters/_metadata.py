"""What an exported graph says about itself, whichever route built it: ``metadata_props`` (read by
the runtimes and ``inspect``), the model's doc string, and the doc string of every input and
output (what Netron shows)."""

import json

from .. import __version__
from ._options import ExportOptions
from ._spec import ModelSpec, fixed_steps

__all__ = ["graph_metadata", "input_docs", "model_doc", "output_docs"]


def _inverse_steps(spec: ModelSpec, options: ExportOptions) -> tuple[int, ...] | None:
    return fixed_steps(spec, options.input_radius) if options.inverse == "fixed" else None


def graph_metadata(
    spec: ModelSpec, options: ExportOptions, graph: str, exporter: str = "iresnet_onnx"
) -> dict[str, str]:
    """The ``iresnet_onnx.*`` metadata of one graph."""
    metadata = {
        "iresnet_onnx.version": __version__,
        "iresnet_onnx.graph": graph,
        "iresnet_onnx.exporter": exporter,
        "iresnet_onnx.spectral_norm": options.spectral_norm,
        "iresnet_onnx.dtype": spec.dtype.name,
        "iresnet_onnx.hp": spec.hp_json(),
        "iresnet_onnx.power_iteration": json.dumps(spec.power_iteration, sort_keys=True),
    }
    if graph == "inverse":
        metadata["iresnet_onnx.inverse"] = options.inverse
        metadata["iresnet_onnx.maxiter_cap"] = str(spec.maxiter_cap)
        steps = _inverse_steps(spec, options)
        if steps is None:
            metadata["iresnet_onnx.steps_per_check"] = str(options.steps_per_check)
        else:
            metadata["iresnet_onnx.fixed_steps"] = json.dumps(steps)
    return metadata


def _model_name(spec: ModelSpec) -> str:
    hp = spec.hp.get("iResNetBlock", spec.hp)
    blocks = f", {spec.nblocks} blocks" if spec.kind == "iResNet" else ""
    return (
        f"{spec.kind}(n={spec.input_size}{blocks}; g {hp.get('variant')}, hidden "
        f"{spec.hidden_size}, {hp.get('activation')}; {spec.dtype.name})"
    )


def model_doc(spec: ModelSpec, options: ExportOptions, graph: str) -> str:
    """What the graph computes, for which model, with which solver semantics."""
    sigma = (
        "σ = ‖A‖₂ of every layer is computed in the graph from the raw weights: at the warm-start "
        "vectors, and by a power-iteration Loop where one of them is stale"
        if options.spectral_norm == "loop"
        else "A′ = A·min(c/‖A‖₂, 1) is folded into the weights"
    )
    head = {
        "forward": f"y = f(x) of an {_model_name(spec)}; {sigma}.",
        "density": (
            f"log p(x) = log N(f(x); 0, I) + log|det ∂f/∂x| of an {_model_name(spec)}, the "
            f"log-determinant exact by the matrix determinant lemma; {sigma}."
        ),
    }
    if graph in head:
        return f"{head[graph]} Exported by iresnet-onnx {__version__}."
    steps = _inverse_steps(spec, options)
    if steps is None:
        solver = (
            f"each block by a fixed-point Loop, row by row: a row stops once max(|Δx| − rtol·|x|) "
            f"≤ atol (tested every {options.steps_per_check} steps) or after maxiter steps; "
            f"maxiter is clipped to {spec.maxiter_cap}"
        )
    else:
        solver = (
            f"each block by a fixed number of gated fixed-point steps ({list(steps)}, no Loop), "
            "row by row: a row stops once max(|Δx| − rtol·|x|) ≤ atol or after maxiter steps; "
            "maxiter above a block's fixed steps runs those steps only"
        )
    return (
        f"x = f⁻¹(y) of an {_model_name(spec)}: {solver}. Defaults maxiter={spec.maxiter}, "
        f"atol={spec.atol:g}, rtol={spec.rtol:g}; {sigma}. Exported by iresnet-onnx {__version__}."
    )


def input_docs(spec: ModelSpec, options: ExportOptions, graph: str) -> dict[str, str]:
    """Doc strings of the graph's inputs."""
    data = f"input, {spec.dtype.name}[batch, {spec.input_size}]; batch is dynamic"
    if graph != "inverse":
        return {"x": data}
    steps = _inverse_steps(spec, options)
    limit = (
        f"clipped to {spec.maxiter_cap}"
        if steps is None
        else f"at most the fixed steps {list(steps)} per block run, whatever maxiter says"
    )
    return {
        "y": data,
        "maxiter": f"optional int64: most fixed-point steps per block (default {spec.maxiter}; "
        f"{limit})",
        "atol": f"optional {spec.dtype.name}: a row stops when max(|Δx| − rtol·|x|) ≤ atol "
        f"(default {spec.atol:g})",
        "rtol": f"optional {spec.dtype.name}: relative tolerance (default {spec.rtol:g})",
    }


def output_docs(graph: str) -> dict[str, str]:
    """Doc strings of the graph's outputs."""
    return {
        "forward": {"y": "y = f(x), same shape as x"},
        "inverse": {
            "x": "x = f⁻¹(y), same shape as y",
            "iterations": "per block (block order): the fixed-point steps of the batch's slowest "
            "row",
            "residual": "per block (block order): the worst final row residual max(|Δx| − "
            "rtol·|x|); converged ⇔ residual ≤ atol (NaN, reported as +inf: not converged)",
        },
        "density": {
            "log_prob": "log p(x) = log N(z; 0, I) + log_det, per row",
            "log_det": "log|det ∂f/∂x|, per row (exact)",
            "z": "z = f(x), the latent",
        },
    }[graph]
