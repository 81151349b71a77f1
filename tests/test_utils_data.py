"""chainrule.utils.data against torch.utils.data: batching, drop_last, collate structure, random_split, samplers."""

from collections import namedtuple

import numpy as np
import pytest

import chainrule as cr
from chainrule.utils import data as crd

Point = namedtuple("Point", "x y")


def plain(obj):
    """A structure of tensors (either library's) as nested Python values: tensors become (dtype, array)."""
    if hasattr(obj, "detach") and hasattr(obj, "numpy"):
        a = obj.detach().numpy() if not isinstance(obj, cr.Tensor) else obj.numpy()
        return ("tensor", str(a.dtype), a.shape, a.tolist())
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return (type(obj).__name__, *map(plain, obj))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [plain(v) for v in obj])
    return obj


def both_tensor_datasets(torch, n=10):
    X = np.random.default_rng(0).standard_normal((n, 3)).astype(np.float32)
    y = np.arange(n, dtype=np.int64) % 3
    return (crd.TensorDataset(cr.tensor(X), cr.tensor(y)),
            torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)))


@pytest.mark.parametrize("batch_size", [1, 3, 4, 10, 12])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sequential_batches_equal_torch(torch, batch_size, drop_last):
    ours, theirs = both_tensor_datasets(torch)
    a = crd.DataLoader(ours, batch_size=batch_size, drop_last=drop_last)
    b = torch.utils.data.DataLoader(theirs, batch_size=batch_size, drop_last=drop_last)
    assert len(a) == len(b)
    got, want = [plain(x) for x in a], [plain(x) for x in b]
    assert got == want and len(got) == len(b)


class Samples(crd.Dataset):
    """Each sample a structure of ndarrays, NumPy scalars, Python numbers, strings, dicts, namedtuples."""

    def __init__(self, kind):
        self.kind = kind

    def __len__(self):
        return 5

    def __getitem__(self, i):
        v = np.arange(3, dtype=np.float64) + i
        return {"tuple": (v, float(i) / 2, i),
                "dict": {"x": v.astype(np.float32), "label": i % 2, "name": f"s{i}", "ok": i > 2},
                "list": [np.int32(i), np.float32(i) / 3, [i, i + 1]],
                "namedtuple": Point(v[:2], i)}[self.kind]


@pytest.mark.parametrize("kind", ["tuple", "dict", "list", "namedtuple"])
@pytest.mark.parametrize("batch_size", [2, None])
def test_collate_structure_equals_torch(torch, kind, batch_size):
    ours = crd.DataLoader(Samples(kind), batch_size=batch_size)
    theirs = torch.utils.data.DataLoader(Samples(kind), batch_size=batch_size)
    assert [plain(x) for x in ours] == [plain(x) for x in theirs]


def test_default_collate_direct_equals_torch(torch):
    batch = [(np.ones((2, 2), np.float32) * i, i, float(i), "a") for i in range(3)]
    assert plain(crd.default_collate(batch)) == plain(torch.utils.data.default_collate(batch))
    assert plain(crd.default_convert(batch[1])) == plain(torch.utils.data.default_convert(batch[1]))


def test_collate_unequal_sizes_raise_like_torch(torch):
    with pytest.raises(RuntimeError, match="equal size"):
        crd.default_collate([[1, 2], [1]])
    with pytest.raises(RuntimeError, match="equal size"):
        torch.utils.data.default_collate([[1, 2], [1]])
    with pytest.raises(RuntimeError, match=r"\(2,\), \(3,\)"):
        crd.default_collate([cr.zeros(2), cr.zeros(3)])


@pytest.mark.filterwarnings("ignore:Length of split")
@pytest.mark.parametrize("n,lengths", [(10, [3, 7]), (31, [0.3, 0.3, 0.4]), (7, [0.5, 0.5]), (100, [0.8, 0.1, 0.1]),
                                       (5, [0.0, 1.0]), (1, [0.5, 0.5])])
def test_random_split_lengths_equal_torch(torch, n, lengths):
    ours = crd.random_split(range(n), lengths, generator=np.random.default_rng(0))
    theirs = torch.utils.data.random_split(range(n), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    flat = sorted(i for s in ours for i in s)
    assert flat == list(range(n))  # a partition of the dataset


def test_random_split_bad_lengths(torch):
    with pytest.raises(ValueError, match="Sum of input lengths"):
        crd.random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="Sum of input lengths"):
        torch.utils.data.random_split(range(10), [3, 3])


def test_shuffle_follows_manual_seed_and_changes_each_epoch():
    ds = crd.TensorDataset(cr.arange(20))
    cr.manual_seed(3)
    loader = crd.DataLoader(ds, batch_size=6, shuffle=True)
    e1 = np.concatenate([b[0].numpy() for b in loader])
    e2 = np.concatenate([b[0].numpy() for b in loader])
    cr.manual_seed(3)
    again = np.concatenate([b[0].numpy() for b in loader])
    assert sorted(e1.tolist()) == list(range(20)) and sorted(e2.tolist()) == list(range(20))
    assert not np.array_equal(e1, e2)  # a fresh permutation per epoch
    np.testing.assert_array_equal(e1, again)  # reseeding repeats it, even for a loader built before
    g = crd.DataLoader(ds, batch_size=20, shuffle=True, generator=np.random.default_rng(5))
    np.testing.assert_array_equal(next(iter(g))[0].numpy(), np.random.default_rng(5).permutation(20))


def test_option_rules_like_torch(torch):
    ours, theirs = both_tensor_datasets(torch)
    for kwargs in [dict(sampler=crd.SequentialSampler(ours), shuffle=True),
                   dict(batch_sampler=[[0, 1]], batch_size=2),
                   dict(batch_size=None, drop_last=True), dict(num_workers=-1)]:
        with pytest.raises(ValueError):
            crd.DataLoader(ours, **kwargs)
        tk = {k: (torch.utils.data.SequentialSampler(theirs) if k == "sampler" else v) for k, v in kwargs.items()}
        with pytest.raises(ValueError):
            torch.utils.data.DataLoader(theirs, **tk)


def test_batch_sampler_and_sampler_equal_torch(torch):
    ours, theirs = both_tensor_datasets(torch)
    batches = [[3, 1], [0, 2, 9], [5]]
    a = crd.DataLoader(ours, batch_sampler=batches)
    b = torch.utils.data.DataLoader(theirs, batch_sampler=batches)
    assert a.batch_size is None and b.batch_size is None and len(a) == len(b) == 3
    assert [plain(x) for x in a] == [plain(x) for x in b]
    order = [4, 0, 7, 7, 2]
    a = crd.DataLoader(ours, sampler=order, batch_size=2)
    b = torch.utils.data.DataLoader(theirs, sampler=order, batch_size=2)
    assert [plain(x) for x in a] == [plain(x) for x in b]
    bs = crd.BatchSampler(crd.SequentialSampler(range(10)), 4, drop_last=True)
    tbs = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(10)), 4, drop_last=True)
    assert list(bs) == list(tbs) and len(bs) == len(tbs)


def test_random_sampler_replacement_and_subset_sampler():
    cr.manual_seed(0)
    draws = list(crd.RandomSampler(range(5), replacement=True, num_samples=12))
    assert len(draws) == 12 and set(draws) <= set(range(5))
    long = list(crd.RandomSampler(range(4), num_samples=10))
    assert len(long) == 10 and sorted(long[:4]) == [0, 1, 2, 3] and sorted(long[4:8]) == [0, 1, 2, 3]
    assert sorted(crd.SubsetRandomSampler([7, 8, 9])) == [7, 8, 9]
    with pytest.raises(ValueError, match="num_samples"):
        crd.RandomSampler(range(3), num_samples=0)


class Counter(crd.IterableDataset):
    def __iter__(self):
        return iter(range(7))


@pytest.mark.parametrize("batch_size,drop_last", [(3, False), (3, True), (None, False)])
def test_iterable_dataset_equals_torch(torch, batch_size, drop_last):
    class TorchCounter(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(7))
    a = crd.DataLoader(Counter(), batch_size=batch_size, drop_last=drop_last)
    b = torch.utils.data.DataLoader(TorchCounter(), batch_size=batch_size, drop_last=drop_last)
    assert [plain(x) for x in a] == [plain(x) for x in b]
    with pytest.raises(ValueError, match="IterableDataset"):
        crd.DataLoader(Counter(), shuffle=True)


def test_concat_and_subset_equal_torch(torch):
    a, b = list(range(3)), list(range(10, 15))
    ours, theirs = crd.ConcatDataset([a, b]), torch.utils.data.ConcatDataset([a, b])
    assert len(ours) == len(theirs) == 8 and ours.cumulative_sizes == theirs.cumulative_sizes
    assert [ours[i] for i in range(-8, 8)] == [theirs[i] for i in range(-8, 8)]
    sub = crd.Subset(ours, [7, 0, 4])
    assert [sub[i] for i in range(3)] == [14, 0, 11] and len(sub) == 3
    loader = crd.DataLoader(sub, batch_size=2)
    assert [x.tolist() for x in loader] == [[14, 0], [11]]
    assert len(crd.TensorDataset(cr.zeros(4, 2)) + crd.TensorDataset(cr.ones(3, 2))) == 7


def test_tensor_dataset_checks_lengths():
    with pytest.raises(ValueError, match=r"Size mismatch.*\(4, 2\), \(3,\)"):
        crd.TensorDataset(cr.zeros(4, 2), cr.zeros(3))


def test_gradients_reach_samples_through_collate():
    w = cr.tensor(np.ones((4, 2), np.float32), requires_grad=True)
    ds = crd.TensorDataset(w)
    (xb,) = next(iter(crd.DataLoader(ds, batch_size=4)))
    (xb * cr.tensor(np.arange(8, dtype=np.float32).reshape(4, 2))).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.arange(8).reshape(4, 2))


def test_array_dataloader_is_unchanged():
    loader = cr.data.DataLoader(np.zeros((10, 2)), np.arange(10), batch_size=4, shuffle=False)
    assert len(loader) == 3 and [b[0].shape for b in loader] == [(4, 2), (4, 2), (2, 2)]
