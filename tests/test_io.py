"""cr.save / cr.load / cr.load_model: safetensors round trips, PyTorch interop both ways, and
refusal of truncated, corrupt or hostile files (nothing executed)."""

import json
import os
import pickle
import struct

import numpy as np
import pytest

import chainrule as cr
from chainrule import io


def _mlp(**kw):
    cr.manual_seed(0)
    return cr.models.MLP([4, 8, 6, 3], **kw)


X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)


def test_state_dict_round_trip(tmp_path):
    m = _mlp(activation="tanh")
    p = tmp_path / "m.safetensors"
    cr.save(m, p)
    sd = cr.load(p)
    assert set(sd) == set(m.state_dict())
    for k, v in m.state_dict().items():
        assert sd[k].dtype == np.float32 and sd[k].shape == v.shape
        np.testing.assert_array_equal(sd[k]._data, v._data)
    assert sd["layers.0.weight"]._data.flags.writeable
    fresh = cr.models.MLP([4, 8, 6, 3], activation="tanh")
    fresh.load_state_dict(sd)
    np.testing.assert_array_equal(fresh(X)._data, m(X)._data)


def test_plain_mapping_float64_and_metadata(tmp_path):
    p = tmp_path / "d.safetensors"
    state = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "b": cr.tensor([1, 2, 3]), "c": np.array(True)}
    cr.save(state, p, metadata={"epoch": "3"})
    got = cr.load(p)
    assert got["a"].dtype == np.float64 and got["b"].dtype == np.int64 and got["c"].dtype == np.bool_
    np.testing.assert_array_equal(got["a"]._data, state["a"])
    assert io.load_metadata(p)["epoch"] == "3"
    with pytest.raises(ValueError, match="metadata must map str to str"):
        cr.save(state, p, metadata={"epoch": 3})


@pytest.mark.parametrize("make", [
    lambda: _mlp(),
    lambda: _mlp(activation="sigmoid", dropout=0.2),
    lambda: cr.models.MLP([6, 4, 1], feature_fn=cr.models.PolynomialFeatures(2)),
    lambda: cr.models.LogisticRegression(4),
    lambda: cr.models.SoftmaxRegression(5, 3, feature_fn=cr.models.PolynomialFeatures(2, include_bias=False)),
], ids=["mlp", "mlp_dropout", "mlp_poly", "logreg", "softmax_poly"])
def test_load_model_rebuilds_architecture(tmp_path, make):
    m = make()
    x = X[:, :2] if m.feature_fn is not None else X
    p = tmp_path / "m.safetensors"
    cr.save(m, p)
    m2 = cr.load_model(p)
    assert type(m2) is type(m) and repr(m2) == repr(m)
    np.testing.assert_array_equal(m2.predict_proba(x), m.predict_proba(x))


def test_load_model_float64(tmp_path):
    m = _mlp().double()
    cr.save(m, tmp_path / "m.safetensors")
    m2 = cr.load_model(tmp_path / "m.safetensors")
    assert all(p.dtype == np.float64 for p in m2.parameters())


def test_load_model_needs_an_architecture(tmp_path):
    cr.save({"w": np.zeros(2)}, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="stores no chainrule architecture"):
        cr.load_model(tmp_path / "w.safetensors")


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    p = tmp_path / "m.safetensors"
    cr.save(_mlp(), p)
    before = p.read_bytes()
    with pytest.raises(TypeError):
        cr.save({"bad": np.array(["x"])}, p)  # fails before writing: the old file is intact
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


# ----- PyTorch interop ---------------------------------------------------------------------------------
def test_chainrule_file_loads_into_torch(torch, tmp_path):
    from safetensors.torch import load_file

    m = _mlp(dropout=0.1)
    p = tmp_path / "m.safetensors"
    cr.save(m, p)
    theirs = m.torch_equivalent()
    sd = {k.removeprefix("layers."): v for k, v in load_file(str(p)).items()}
    theirs.load_state_dict(sd, strict=True)
    theirs.eval()
    with torch.no_grad():
        out = theirs(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(m.eval()(X)._data, out, rtol=1e-5, atol=1e-6)


def test_torch_file_loads_into_chainrule(torch, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6),
                                 torch.nn.Tanh(), torch.nn.Linear(6, 3))
    p = tmp_path / "t.safetensors"
    save_file({f"layers.{k}": v.contiguous() for k, v in theirs.state_dict().items()}, str(p))
    ours = cr.models.MLP([4, 8, 6, 3], activation="tanh")
    ours.load_state_dict(cr.load(p))
    with torch.no_grad():
        ref = theirs(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(ours(X)._data, ref, rtol=1e-5, atol=1e-6)
    # and the torch key convention directly
    ours2 = cr.models.MLP([4, 8, 6, 3], activation="tanh")
    ours2.from_torch_state_dict(theirs.state_dict())
    np.testing.assert_allclose(ours2(X)._data, ref, rtol=1e-5, atol=1e-6)
    assert set(ours2.to_torch_state_dict()) == set(theirs.state_dict())


# ----- hostile files -------------------------------------------------------------------------------------
def _valid_bytes(tmp_path):
    p = tmp_path / "ok.safetensors"
    cr.save({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, p)
    return p.read_bytes()


def _craft(header, data=b"", length=None):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def _refused(tmp_path, blob, match, fn=cr.load):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(blob)
    with pytest.raises(ValueError, match=match):
        fn(p)


W = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}


@pytest.mark.parametrize("name,blob,match", [
    ("empty", lambda ok: b"", "fewer than the 8-byte header length"),
    ("truncated_length", lambda ok: ok[:5], "fewer than the 8-byte"),
    ("truncated_header", lambda ok: ok[:20], "header claims"),
    ("truncated_data", lambda ok: ok[:-4], "not a valid safetensors file"),
    ("huge_header_length", lambda ok: struct.pack("<Q", 2**63) + ok[8:], "header claims"),
    ("header_not_json", lambda ok: struct.pack("<Q", 5) + b"{oops" + b"\0" * 8, "header is not JSON"),
    ("header_not_utf8", lambda ok: struct.pack("<Q", 4) + b"\xff\xfe{}", "header is not JSON"),
    ("header_is_a_list", lambda ok: _craft([1, 2]), "must be a JSON object"),
    ("offsets_past_end", lambda ok: _craft({"w": dict(W, data_offsets=[0, 4000])}, b"\0" * 24), "not a valid"),
    ("offsets_vs_shape", lambda ok: _craft({"w": dict(W, shape=[4, 3])}, b"\0" * 24), "not a valid"),
    ("negative_offset", lambda ok: _craft({"w": dict(W, data_offsets=[-8, 24])}, b"\0" * 24), "bad entry"),
    ("negative_shape", lambda ok: _craft({"w": dict(W, shape=[-2, -3])}, b"\0" * 24), "bad entry"),
    ("unknown_dtype", lambda ok: _craft({"w": dict(W, dtype="OBJ")}, b"\0" * 24), "bad entry"),
    ("overlapping", lambda ok: _craft({"w": W, "v": W}, b"\0" * 24), "not a valid"),
    ("gap_in_data", lambda ok: _craft({"w": dict(W, data_offsets=[8, 32])}, b"\0" * 32), "not a valid"),
    ("metadata_not_strings", lambda ok: _craft({"__metadata__": {"a": 1}, "w": W}, b"\0" * 24), "must map strings"),
    ("metadata_not_a_map", lambda ok: _craft({"__metadata__": "x", "w": W}, b"\0" * 24), "must map strings"),
    ("zip_from_torch_save", lambda ok: b"PK\x03\x04" + b"\0" * 100, "header claims"),
])
def test_malformed_files_are_refused(tmp_path, name, blob, match):
    _refused(tmp_path, blob(_valid_bytes(tmp_path)), match)


class _Boom:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_renamed_safetensors_is_refused_and_not_executed(tmp_path, protocol):
    marker = tmp_path / "pwned"
    blob = pickle.dumps({"w": _Boom(str(marker))}, protocol=protocol)
    for fn in (cr.load, cr.load_model, io.load_metadata):
        _refused(tmp_path, blob, "not a valid safetensors file", fn)
    assert not marker.exists()


def test_torch_save_file_is_read_by_content_not_by_name(torch, tmp_path):
    # cr.load reads a torch.save archive with a restricted unpickler (tests/test_torch_format.py);
    # load_model and load_metadata read safetensors only, and refuse it.
    p = tmp_path / "model.safetensors"
    torch.save({"w": torch.zeros(3)}, str(p))
    assert cr.load(p)["w"].numpy().tolist() == [0.0, 0.0, 0.0]
    for fn in (cr.load_model, io.load_metadata):
        with pytest.raises(ValueError, match="chainrule never unpickles|not a valid"):
            fn(p)


@pytest.mark.parametrize("arch,match", [
    ("not json {", "not JSON"),
    (json.dumps({"class": "os.system"}), "unknown architecture"),
    (json.dumps(["MLP"]), "unknown architecture"),
    (json.dumps({"class": "MLP", "sizes": [4, 3], "activation": "__import__('os')"}), "unknown activation"),
    (json.dumps({"class": "MLP", "sizes": [4, 3], "evil": 1}), "bad architecture argument evil"),
    (json.dumps({"class": "MLP", "sizes": ["4", 3]}), "sizes must be integers"),
    (json.dumps({"class": "MLP", "sizes": [4, 3], "feature_fn": {"Lambda": "x"}}), "unknown feature function"),
    (json.dumps({"class": "MLP", "sizes": [5, 3]}), "has 18 parameters but the file holds 15 numbers"),
    (json.dumps({"class": "MLP", "sizes": [2, 5]}), r"shape mismatch for 'layers.0.weight'"),  # also 15
    (json.dumps({"class": "MLP", "sizes": [10**6, 10**6, 10**6]}), "has 2000002000000 parameters"),  # no 8 TB alloc
    (json.dumps({"class": "SoftmaxRegression", "n_features": -1, "n_classes": 3}), "positive integers"),
    (json.dumps({"class": "MLP", "sizes": [4, 3], "feature_fn": {"PolynomialFeatures": {"degree": 10**9}}}),
     "implausible PolynomialFeatures degree"),
])
def test_hostile_architecture_metadata_is_refused(tmp_path, arch, match):
    m = cr.models.MLP([4, 3])
    p = tmp_path / "m.safetensors"
    cr.save(m.state_dict(), p, metadata={io.ARCH_KEY: arch})
    with pytest.raises(ValueError, match=match):
        cr.load_model(p)
