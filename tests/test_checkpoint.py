"""save_checkpoint / load_checkpoint: exact round trips, and every bad file is a CheckpointError."""

import json
import math

import numpy as np
import pytest
import torch

from iresnet_onnx import LinearContraction, iResNet, iResNetBlock, load_checkpoint, save_checkpoint
from iresnet_onnx._checkpoint import FORMAT, VERSION
from iresnet_onnx.errors import CheckpointError
from tests.conftest import make_model

CALLS: list[str] = []
"""What the malicious pickle's payload would record, had it been run."""


def record_call(tag: str) -> str:
    CALLS.append(tag)
    return tag


class Evil:
    """Unpickles by calling ``record_call``: harmless, but proof that code ran."""

    def __reduce__(self):
        return (record_call, ("executed",))


def make_block(dtype: torch.dtype) -> iResNetBlock:
    torch.manual_seed(1)
    block = iResNetBlock(8, variant="mlp", activation="Tanh", hidden_size=5, maxiter=200)
    with torch.no_grad():
        for name, parameter in block.named_parameters():
            if name.endswith("weight"):
                parameter.mul_(10.0)
    return block.to(dtype).eval()


def make_net(dtype: torch.dtype) -> iResNet:
    model = make_model(8, 3, activation="ELU", dtype=dtype, maxiter=150, atol=1e-7)
    # a few training steps move the spectral norm's warm-start vectors away from their init
    model.train()
    for seed in range(3):
        model(torch.randn(4, 8, generator=torch.Generator().manual_seed(seed), dtype=dtype))
    return model.eval()


BUILDERS = {"iResNet": make_net, "iResNetBlock": make_block}


@pytest.fixture
def saved(tmp_path):
    """A valid checkpoint of an iResNet, and its payload as plain data."""
    path = save_checkpoint(make_net(torch.float32), tmp_path / "good.pt")
    return path, torch.load(path, weights_only=True)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_round_trip_is_exact(tmp_path, kind, dtype):
    model = BUILDERS[kind](dtype)
    path = save_checkpoint(model, tmp_path / "sub" / "model.pt")
    assert path == tmp_path / "sub" / "model.pt" and path.is_file()
    loaded = load_checkpoint(path)

    assert type(loaded) is type(model)
    assert not loaded.training
    assert loaded.HP == model.HP
    assert next(loaded.parameters()).dtype == dtype
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert loaded_state.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded_state[key], value), key

    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0), dtype=dtype)
    with torch.no_grad():
        y = model(x)
        assert torch.equal(loaded(x), y)
        assert torch.equal(loaded.inverse(y), model.inverse(y))
        # a second call is bit-identical too: eval mode never changes state
        assert torch.equal(loaded(x), y)


def test_hp_is_preserved(tmp_path):
    model = iResNet(
        6,
        nblocks=4,
        iResNetBlock={
            "activation": "Tanh",
            "variant": "mlp",
            "hidden_size": 3,
            "maxiter": 37,
            "atol": 1e-7,
            "rtol": 0.0,
            "bias": False,
        },
    )
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "m.pt"))
    assert loaded.HP == model.HP
    assert len(loaded.blocks) == 4
    block = loaded.blocks[0]
    assert (block.maxiter, block.atol, block.rtol, block.hidden_size) == (37, 1e-7, 0.0, 3)
    assert block.HP["variant"] == "mlp" and block.HP["activation"] == "Tanh"
    assert not any(name.endswith("bias") for name, _ in loaded.named_parameters())


def test_training_model_loads_in_eval_mode(tmp_path):
    model = make_model(8, 2).train()
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "m.pt"))
    assert model.training and not loaded.training
    assert all(not module.training for module in loaded.modules())


@pytest.mark.parametrize(
    "thing",
    [torch.nn.Linear(2, 2), {"a": 1}, None, make_model(4, 1).state_dict()],
    ids=["Linear", "dict", "None", "state_dict"],
)
def test_save_of_a_non_model_is_a_type_error(tmp_path, thing):
    path = tmp_path / "x.pt"
    with pytest.raises(TypeError, match="iResNet or iResNetBlock"):
        save_checkpoint(thing, path)
    assert not path.exists()


# files that are not good checkpoints


def write_bytes(data: bytes):
    def write(path, good_path, payload):
        path.write_bytes(data)

    return write


def truncate(fraction: float):
    def write(path, good_path, payload):
        data = good_path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return write


def edited(**changes):
    def write(path, good_path, payload):
        torch.save({**payload, **changes}, path)

    return write


def drop_key(key: str):
    def write(path, good_path, payload):
        torch.save({k: v for k, v in payload.items() if k != key}, path)

    return write


def plain_state_dict(path, good_path, payload):
    torch.save(make_net(torch.float32).state_dict(), path)


def plain_tensor(path, good_path, payload):
    torch.save(torch.zeros(3), path)


def other_model_state_dict(path, good_path, payload):
    torch.save({**payload, "state_dict": make_model(10, 3).state_dict()}, path)


def state_dict_missing_a_key(path, good_path, payload):
    state = dict(payload["state_dict"])
    state.pop(next(iter(state)))
    torch.save({**payload, "state_dict": state}, path)


def hp_with_more_blocks(path, good_path, payload):
    hp = json.loads(payload["hp"])
    hp["nblocks"] += 1
    torch.save({**payload, "hp": json.dumps(hp)}, path)


def hp_edit(**changes):
    """The good payload with its HP changed (block HP under "iResNetBlock")."""

    def write(path, good_path, payload):
        hp = json.loads(payload["hp"])
        for key, value in changes.items():
            if key in hp:
                hp[key] = value
            else:
                hp["iResNetBlock"][key] = value
        torch.save({**payload, "hp": json.dumps(hp)}, path)

    return write


def tensor_edit(suffix: str, value: float):
    """The good payload with every state_dict tensor named ``…suffix`` filled with ``value``."""

    def write(path, good_path, payload):
        state = {
            k: torch.full_like(v, value) if k.endswith(suffix) else v
            for k, v in payload["state_dict"].items()
        }
        torch.save({**payload, "state_dict": state}, path)

    return write


BAD_FILES = {
    "random-bytes": write_bytes(np.random.default_rng(0).bytes(4096)),
    "empty": write_bytes(b""),
    "truncated-half": truncate(0.5),
    "truncated-head": truncate(0.01),
    "truncated-tail": truncate(0.99),
    "foreign-state-dict": plain_state_dict,
    "foreign-tensor": plain_tensor,
    "no-format": drop_key("format"),
    "other-format": edited(format="some-other-checkpoint"),
    "version-2": edited(version=VERSION + 1),
    "version-0": edited(version=0),
    "version-string": edited(version=str(VERSION)),
    "no-version": drop_key("version"),
    "unknown-class": edited(**{"class": "Linear"}),
    "misspelled-class": edited(**{"class": "iResNetBlok"}),
    "no-hp": drop_key("hp"),
    "hp-not-json": edited(hp="{not json"),
    "hp-unknown-key": edited(hp=json.dumps({"input_size": 8, "depth": 3})),
    "bad-dtype": edited(dtype="int64"),
    "no-state-dict": drop_key("state_dict"),
    "state-dict-of-another-width": other_model_state_dict,
    "state-dict-missing-a-key": state_dict_missing_a_key,
    "hp-with-more-blocks": hp_with_more_blocks,
    # forged sizes: refused from the shapes, before anything of that size is built
    "forged-hidden-size-1500": hp_edit(hidden_size=1500),
    "forged-hidden-size-50000": hp_edit(hidden_size=50_000),
    "forged-nblocks-million": hp_edit(nblocks=1_000_000),
    "hp-a-list": edited(hp=json.dumps([1, 2])),
    "tensor-of-another-dtype": lambda path, good, payload: torch.save(
        {**payload, "state_dict": {k: v.double() for k, v in payload["state_dict"].items()}}, path
    ),
    # a model that is not invertible
    "c-is-5": tensor_edit(".c", 5.0),
    "c-is-0": tensor_edit(".c", 0.0),
    "nan-weights": tensor_edit("0.weight", float("nan")),
    "inf-bias": tensor_edit("1.bias", float("inf")),
    "nan-power-vector": tensor_edit("power_vector", float("nan")),
}

REASONS = {
    "forged-hidden-size-1500": "has shape",
    "forged-nblocks-million": "nblocks=1000000, but the state_dict holds 3 blocks",
    "c-is-5": "c is 5.0, it must lie in (0, 1)",
    "nan-weights": "weight contains NaN or Inf",
    "inf-bias": "bias contains NaN or Inf",
    "nan-power-vector": "power_vector contains NaN or Inf",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_is_a_checkpoint_error(tmp_path, saved, kind):
    good_path, payload = saved
    path = tmp_path / f"{kind}.pt"
    BAD_FILES[kind](path, good_path, payload)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert REASONS.get(kind, "") in str(info.value)


@pytest.mark.parametrize(
    "kind", ["forged-hidden-size-1500", "forged-hidden-size-50000", "forged-nblocks-million"]
)
def test_forged_sizes_are_refused_before_a_model_is_built(tmp_path, saved, kind, monkeypatch):
    good_path, payload = saved
    path = tmp_path / f"{kind}.pt"
    BAD_FILES[kind](path, good_path, payload)

    def no_real_layer(self, *args, **kwargs):
        if not self.weight.is_meta:
            raise AssertionError("a real layer was built from a forged checkpoint")

    monkeypatch.setattr(LinearContraction, "refresh_power_vector", no_real_layer)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_a_model_that_cannot_load_cannot_be_saved(tmp_path):
    model = make_net(torch.float32)
    with torch.no_grad():
        model.blocks[1].bottleneck[0].weight[0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    with pytest.raises(ValueError, match=r"blocks\.1\.bottleneck\.0\.weight contains NaN"):
        save_checkpoint(model, path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_save_is_atomic(tmp_path, monkeypatch):
    good = save_checkpoint(make_net(torch.float32), tmp_path / "model.pt")
    before = good.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(make_net(torch.float64), good)
    assert good.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_good_payload_is_what_the_bad_files_edit(saved):
    good_path, payload = saved
    assert payload["format"] == FORMAT and payload["version"] == VERSION
    assert payload["class"] == "iResNet"
    assert isinstance(load_checkpoint(good_path), iResNet)


@pytest.mark.parametrize("target", ["missing.pt", "."], ids=["missing", "directory"])
def test_missing_file(tmp_path, target):
    path = tmp_path / target
    with pytest.raises(CheckpointError, match="no such file") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["this is not a checkpoint\n", "hello\n", "shapes: [8, 8]\n"],
    ids=["this", "hello", "shapes"],
)
def test_text_file_is_a_checkpoint_error(tmp_path, text):
    path = tmp_path / "notes.pt"
    path.write_text(text)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_unhashable_class_is_a_checkpoint_error(tmp_path, saved):
    _, payload = saved
    path = tmp_path / "x.pt"
    torch.save({**payload, "class": ["iResNet"]}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


# a pickle that carries code is refused, and its code never runs


def evil_top_level(path, payload):
    torch.save({"x": Evil()}, path)


def evil_inside_a_good_payload(path, payload):
    torch.save({**payload, "state_dict": {**payload["state_dict"], "extra": Evil()}}, path)


def evil_as_hp(path, payload):
    torch.save({**payload, "hp": Evil()}, path)


@pytest.mark.parametrize("write", [evil_top_level, evil_inside_a_good_payload, evil_as_hp])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, saved, write):
    _, payload = saved
    path = tmp_path / "evil.pt"
    write(path, payload)
    CALLS.clear()
    # the file really carries code: an unsafe load runs it
    torch.load(path, weights_only=False)
    assert CALLS == ["executed"]

    CALLS.clear()
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert CALLS == []


def test_a_refused_pickle_never_advises_weights_only_false(tmp_path):
    """torch's message goes on to suggest weights_only=False, which would run the code."""
    path = tmp_path / "code.pt"
    # not `print`: once ray is imported in the test process, builtins.print is ray's safe_print
    torch.save({"format": "iresnet-onnx-checkpoint", "payload": math.sqrt}, path)
    with pytest.raises(CheckpointError, match="refused to unpickle") as caught:
        load_checkpoint(path)
    assert "weights_only" not in str(caught.value) and "GLOBAL math.sqrt" in str(caught.value)
