#!/usr/bin/env python
"""Accuracy of the core against independent references (float64 unless stated).

σ = SpectralNorm.apply(A) and its gradient u vᵀ against torch.linalg.matrix_norm(A, 2) and its
autograd gradient (an SVD), on random matrices of random shapes; round trips f⁻¹∘f and f∘f⁻¹ of
iResNets with weights ×10 and tight solver tolerances; the seed's float32 quantile criterion.
Usage: python scripts/accuracy.py
"""

import warnings

import torch

from iresnet_onnx import SpectralNorm, iResNet


def spectral(count: int = 200, seed: int = 5) -> None:
    generator = torch.Generator().manual_seed(seed)
    sigma_errors, gradient_errors = [], []
    for _ in range(count):
        m, n = torch.randint(1, 40, (2,), generator=generator).tolist()
        A = torch.randn(m, n, generator=generator, dtype=torch.float64)
        ours, reference = A.clone().requires_grad_(), A.clone().requires_grad_()
        sigma, expected = SpectralNorm.apply(ours), torch.linalg.matrix_norm(reference, 2)
        sigma.backward()
        expected.backward()
        sigma_errors.append(float(abs(sigma - expected).detach() / expected.detach()))
        gradient_errors.append(float((ours.grad - reference.grad).abs().max()))
    gradient_errors.sort()
    print(
        f"{count} random float64 matrices (1–39 × 1–39): σ relative error max {max(sigma_errors):.1e}; "
        f"gradient max |Δ| {gradient_errors[-1]:.1e} (median {gradient_errors[count // 2]:.1e})"
    )


def round_trips() -> None:
    for variant in ("lowrank", "mlp"):
        for activation in ("ReLU", "ELU", "Tanh"):
            torch.manual_seed(0)
            block = {"variant": variant, "activation": activation, "hidden_size": 4,
                     "atol": 1e-13, "rtol": 1e-13, "maxiter": 2000}  # fmt: skip
            model = iResNet(6, nblocks=3, iResNetBlock=block).double().eval()
            with torch.no_grad():
                for name, parameter in model.named_parameters():
                    if name.endswith("weight"):
                        parameter.mul_(10.0)
                x = torch.randn(256, 6, dtype=torch.float64)
                there_and_back = float((model.inverse(model(x)) - x).abs().max())
                back_and_there = float((model(model.inverse(x)) - x).abs().max())
            print(
                f"float64 round trip {variant:<7} {activation:<4}: max|f⁻¹(f(x)) − x| {there_and_back:.1e}, "
                f"max|f(f⁻¹(x)) − x| {back_and_there:.1e}"
            )


def seed_quantiles() -> None:
    for variant in ("lowrank", "mlp"):
        torch.manual_seed(1)
        model = iResNet(10, nblocks=4, iResNetBlock={"variant": variant, "maxiter": 20}).eval()
        x = torch.randn(1000, 10)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rms = (model.inverse(model(x)) - x).square().mean(-1).sqrt()
        quantiles = torch.quantile(rms, torch.tensor([0.5, 0.68, 0.95, 0.997])).tolist()
        print(f"float32 {variant:<7} per-sample RMS quantiles .5/.68/.95/.997: "
              + ", ".join(f"{q:.1e}" for q in quantiles) + " (limits .005/.005/.01/.01)")  # fmt: skip


if __name__ == "__main__":
    spectral()
    round_trips()
    seed_quantiles()
