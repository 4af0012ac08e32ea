"""score: log p per row through density.onnx, streamed, written atomically, bad rows named."""

import numpy as np
import pytest
import torch

from iresnet_onnx._manifest import sha256
from iresnet_onnx.cli import main
from iresnet_onnx.jobs._score import score_file
from tests.conftest import make_model


@pytest.fixture(scope="module")
def model_and_export(exported):
    model = make_model(5, 2, variant="mlp", activation="Tanh")
    return model, exported("scoring", model)


def test_scores_equal_eager_log_prob_in_row_order(model_and_export, tmp_path):
    model, result = model_and_export
    data = np.random.default_rng(0).standard_normal((1000, 5)).astype(np.float32)
    np.save(tmp_path / "data.npy", data)
    np.savetxt(tmp_path / "data.csv", data, delimiter=",", header="a,b,c,d,e", comments="")
    with torch.no_grad():
        expected = model.log_prob(torch.from_numpy(data)).numpy()
    npy = score_file(result.out_dir, tmp_path / "data.npy", tmp_path / "s.npy", batch_size=64,
                     progress=False)  # fmt: skip
    assert npy.rows == 1000
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), expected, rtol=1e-5, atol=1e-4)
    score_file(result.out_dir, tmp_path / "data.csv", tmp_path / "s.csv", batch_size=300,
               progress=False)  # fmt: skip
    from_csv = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(from_csv, expected, rtol=1e-5, atol=1e-4)


def test_a_bad_row_is_named_and_nothing_is_written(model_and_export, tmp_path, capsys):
    _, result = model_and_export
    out = tmp_path / "scores.npy"
    np.save(out, np.arange(3.0))
    before = sha256(out)
    data = np.random.default_rng(1).standard_normal((500, 5)).astype(np.float32)
    data[321, 2] = np.nan
    np.save(tmp_path / "nan.npy", data)
    code = main(["score", str(result.out_dir), str(tmp_path / "nan.npy"), "--out", str(out),
                 "--batch-size", "100", "--quiet"])  # fmt: skip
    assert code == 2 and "row 321 is not" in capsys.readouterr().err
    np.save(tmp_path / "wide.npy", np.zeros((4, 7), np.float32))
    code = main(["score", str(result.out_dir), str(tmp_path / "wide.npy"), "--out", str(out)])
    assert code == 2 and "expects 5" in capsys.readouterr().err
    assert sha256(out) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "nan.npy", "scores.npy", "wide.npy"
    ]  # fmt: skip
