"""cr.load of files written by torch.save (weights_only semantics): values, dtypes, strides, shared storages,
and a restricted unpickler that refuses every global outside its allowlist without running it."""

import io
import pickle
import zipfile

import numpy as np
import pytest

import chainrule as cr
from chainrule import torch_format


def _save(torch, obj, tmp_path, name="w.pt"):
    p = tmp_path / name
    torch.save(obj, str(p))
    return p


def test_state_dict_of_a_torch_mlp_loads_and_runs(torch, tmp_path):
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    sd = cr.load(_save(torch, theirs.state_dict(), tmp_path), weights_only=True)
    assert list(sd) == list(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        assert sd[k].dtype == np.float32 and sd[k].shape == tuple(v.shape)
        np.testing.assert_array_equal(sd[k].numpy(), v.numpy())
    ours = cr.nn.Sequential(cr.nn.Linear(5, 7), cr.nn.ReLU(), cr.nn.Linear(7, 3))
    ours.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(ours(cr.tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool",
                                   "uint16", "complex64"])
def test_dtypes_are_kept(torch, tmp_path, dtype):
    a = (np.arange(12).reshape(3, 4) % 5).astype(dtype)
    t = cr.load(_save(torch, torch.from_numpy(a.copy()), tmp_path))
    assert isinstance(t, cr.Tensor) and t.dtype == np.dtype(dtype) and t.shape == (3, 4)
    np.testing.assert_array_equal(t.numpy(), a)


def test_bfloat16_widens_exactly(torch, tmp_path):
    x = torch.tensor([1.5, -2.25, 3.0e5, 1e-3]).to(torch.bfloat16)
    t = cr.load(_save(torch, x, tmp_path))
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), x.float().numpy())


def test_views_keep_shape_stride_offset_and_share_storage(torch, tmp_path):
    x = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    views = {"x": x, "t": x.t(), "row": x[2], "cols": x[:, 1::2], "exp": torch.ones(3).expand(4, 3),
             "empty": x[:0], "scalar": x[1, 1]}
    got = cr.load(_save(torch, views, tmp_path))
    for k, v in views.items():
        assert got[k].shape == tuple(v.shape) and got[k].dtype == np.dtype(str(v.dtype).removeprefix("torch."))
        np.testing.assert_array_equal(got[k].numpy(), v.numpy())
    assert got["exp"].numpy().strides == (0, 4) and got["t"].numpy().strides == (8, 48)  # torch's strides, in bytes
    assert np.shares_memory(got["x"].numpy(), got["t"].numpy())  # one storage in torch, one buffer here
    got["x"].numpy()[2, 0] = -1.0
    assert got["row"].numpy()[0] == -1.0 and got["t"].numpy()[0, 2] == -1.0


def test_containers_scalars_parameters_and_file_objects(torch, tmp_path):
    obj = {"list": [torch.ones(2), 3, "s"], "tuple": (1.5, torch.zeros(1, dtype=torch.int64)), "size": torch.Size([2, 3]),
           "dtype": torch.float64, "bytes": b"ab", "p": torch.nn.Parameter(torch.full((2,), 2.0)), "none": None,
           "set": {1, 2}}
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    got = cr.load(buf)
    assert got["list"][1:] == [3, "s"] and got["list"][0].numpy().tolist() == [1.0, 1.0]
    assert got["tuple"][0] == 1.5 and got["tuple"][1].dtype == np.int64
    assert tuple(got["size"]) == (2, 3) and got["dtype"] == np.float64 and got["bytes"] == b"ab"
    assert isinstance(got["p"], cr.nn.Parameter) and got["p"].requires_grad and got["p"].numpy().tolist() == [2.0, 2.0]
    assert got["none"] is None and got["set"] == {1, 2}


def test_safetensors_still_load_and_weights_only_false_is_refused(torch, tmp_path):
    m = cr.nn.Linear(3, 2)
    cr.save(m, tmp_path / "m.safetensors")
    assert set(cr.load(tmp_path / "m.safetensors")) == {"weight", "bias"}
    p = _save(torch, {"w": torch.zeros(2)}, tmp_path)
    with pytest.raises(ValueError, match="weights_only=False"):
        cr.load(p, weights_only=False)
    with pytest.raises(ValueError, match="CPU only"):
        cr.load(p, map_location="cuda")
    assert cr.load(p, map_location="cpu")["w"].shape == (2,)


def test_legacy_non_zip_file_is_refused(torch, tmp_path):
    p = tmp_path / "old.pt"
    torch.save({"w": torch.zeros(2)}, str(p), _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="not a torch.save zip archive"):
        torch_format.load(p)
    with pytest.raises(ValueError):
        cr.load(p)


# ----- hostile files -----------------------------------------------------------------------------
class G:
    """A global name written as a GLOBAL opcode by _Crafter (lets a test write any pickle a torch file could hold)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self):  # save_reduce needs a callable
        raise AssertionError


class R:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


class PID:
    def __init__(self, pid):
        self.pid = pid


class _Crafter(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def save_g(self, obj):
        self.write(b"c" + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[G] = save_g

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, PID) else None


def _archive(tmp_path, obj, storages=None):
    buf = io.BytesIO()
    _Crafter(buf, protocol=2).dump(obj)
    p = tmp_path / "crafted.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for k, v in (storages or {}).items():
            z.writestr(f"archive/data/{k}", v)
    return p


def _tensor(storage_key, numel, offset, size, stride, kind="FloatStorage"):
    pid = PID(("storage", G("torch", kind), storage_key, "cpu", numel))
    return R(G("torch._utils", "_rebuild_tensor_v2"), (pid, offset, size, stride, False, R(G("collections", "OrderedDict"), ())))


@pytest.mark.parametrize("module,name", [("os", "system"), ("posix", "system"), ("builtins", "eval"),
                                         ("builtins", "exec"), ("subprocess", "call"), ("torch", "load"),
                                         ("torch._utils", "_rebuild_device_tensor_from_numpy")])
def test_globals_outside_the_allowlist_are_refused_and_nothing_runs(tmp_path, module, name):
    marker = tmp_path / "pwned"
    p = _archive(tmp_path, {"w": R(G(module, name), (f"touch {marker}",))})
    with pytest.raises(pickle.UnpicklingError, match=f"refused to load the global {module}.{name}"):
        cr.load(p)
    assert not marker.exists()


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_a_real_torch_save_of_a_reduce_payload_is_refused(torch, tmp_path):
    marker = tmp_path / "pwned"
    p = _save(torch, {"w": torch.ones(2), "evil": _Boom(str(marker))}, tmp_path)
    with pytest.raises(pickle.UnpicklingError, match="refused to load the global (posix|os).system"):
        cr.load(p)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # torch refuses it too under weights_only=True
        torch.load(str(p), weights_only=True)
    assert not marker.exists()


def test_crafted_geometry_and_storage_sizes_are_checked(tmp_path):
    data = np.arange(4, dtype=np.float32).tobytes()
    ok = cr.load(_archive(tmp_path, _tensor("0", 4, 1, (3,), (1,)), {"0": data}))
    assert ok.numpy().tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(pickle.UnpicklingError, match="reaches element 4 of a storage of 4"):
        cr.load(_archive(tmp_path, _tensor("0", 4, 2, (3,), (1,)), {"0": data}))
    with pytest.raises(pickle.UnpicklingError, match="reaches element"):
        cr.load(_archive(tmp_path, _tensor("0", 4, 0, (2, 2), (3, 1)), {"0": data}))
    with pytest.raises(pickle.UnpicklingError, match="bad tensor geometry"):
        cr.load(_archive(tmp_path, _tensor("0", 4, 0, (2,), (-1,)), {"0": data}))
    with pytest.raises(pickle.UnpicklingError, match="should hold 8 elements"):
        cr.load(_archive(tmp_path, _tensor("0", 8, 0, (8,), (1,)), {"0": data}))
    with pytest.raises(pickle.UnpicklingError, match="storage '1' is missing"):
        cr.load(_archive(tmp_path, _tensor("1", 4, 0, (4,), (1,)), {"0": data}))
    with pytest.raises(pickle.UnpicklingError, match="persistent id"):
        cr.load(_archive(tmp_path, [PID(("storage", "x"))]))


class RS(R):
    """A reduce with a state: pickle writes BUILD after it."""

    def __init__(self, fn, args, state):
        super().__init__(fn, args)
        self.state = state

    def __reduce__(self):
        return (self.fn, self.args, self.state)


def test_setting_state_is_refused_except_a_state_dicts_metadata(tmp_path):
    data = np.arange(4, dtype=np.float32).tobytes()
    ok = cr.load(_archive(tmp_path, RS(G("collections", "OrderedDict"), (), {"_metadata": {"": {"version": 1}}})))
    assert ok == {} and ok._metadata == {"": {"version": 1}}
    t = _tensor("0", 4, 0, (4,), (1,))
    for target, state in [(R(G("builtins", "bytearray"), (b"ab",)), {"x": 1}),
                          (RS(t.fn, t.args, (None, {"_ctx": 1})), None),
                          (RS(G("torch", "Size"), ((2,),), {"x": 1}), None)]:
        obj = target if state is None else RS(target.fn, target.args, state)
        with pytest.raises(pickle.UnpicklingError, match="refused to set the state"):
            cr.load(_archive(tmp_path, obj, {"0": data}))
