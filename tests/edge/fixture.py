"""The exports the torch-free tests check, made by the full (torch) environment.

``python -m tests.edge.fixture OUT`` writes ``OUT/loop`` (the default export) and ``OUT/portable``
(folded spectral norm, ``inverse="fixed"``): what an edge box receives from a build pipeline.
"""

import sys
from pathlib import Path


def make_exports(out: Path) -> dict[str, Path]:
    from iresnet_onnx import export
    from tests.conftest import make_model

    model = make_model(6, 3, activation="ELU", seed=11)
    folders = {"loop": out / "loop", "portable": out / "portable"}
    export(model, folders["loop"])
    export(model, folders["portable"], spectral_norm="folded", inverse="fixed", ort_format=True)
    return folders


if __name__ == "__main__":
    for name, folder in make_exports(Path(sys.argv[1])).items():
        print(f"{name}: {folder}")
