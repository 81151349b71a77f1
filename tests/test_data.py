"""DataLoader: batching (GD / SGD / minibatch), reproducible and resumable order, input checks."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import DataLoader, check_features, check_X_y, train_test_split


def _xy(n=10):
    return np.arange(n * 2, dtype=np.float64).reshape(n, 2), np.arange(n)


def test_len_and_batch_sizes():
    X, y = _xy(10)
    assert len(DataLoader(X, y, batch_size=3)) == 4
    assert len(DataLoader(X, y, batch_size=3, drop_last=True)) == 3
    assert [len(b[1]) for b in DataLoader(X, y, batch_size=3, shuffle=False)] == [3, 3, 3, 1]
    full = list(DataLoader(X, y, batch_size=None))  # the lecture's (full-batch) GD
    assert len(full) == 1 and full[0][0].shape == (10, 2)
    assert len(DataLoader(X, y, batch_size=1)) == 10  # pure SGD


def test_batches_are_float32_tensors_and_cover_every_sample_once():
    X, y = _xy(10)
    batches = list(DataLoader(X, y, batch_size=4, seed=0))
    assert all(isinstance(xb, cr.Tensor) and xb.dtype == np.float32 for xb, _ in batches)
    seen = np.concatenate([yb._data for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(10)) and not np.array_equal(seen, np.arange(10))
    # rows stay paired with their labels
    for xb, yb in batches:
        np.testing.assert_array_equal(xb._data[:, 0], 2 * yb._data)


def test_same_seed_same_order_and_new_order_each_epoch():
    X, y = _xy(20)
    a, b = DataLoader(X, y, batch_size=5, seed=3), DataLoader(X, y, batch_size=5, seed=3)
    e1 = [yb._data.tolist() for _, yb in a]
    assert e1 == [yb._data.tolist() for _, yb in b]
    assert e1 != [yb._data.tolist() for _, yb in a]


def test_seed_none_follows_manual_seed():
    X, y = _xy(20)
    cr.manual_seed(5); a = [yb._data.tolist() for _, yb in DataLoader(X, y, batch_size=5)]
    cr.manual_seed(5); b = [yb._data.tolist() for _, yb in DataLoader(X, y, batch_size=5)]
    assert a == b


def test_state_dict_resumes_the_exact_order():
    X, y = _xy(20)
    a = DataLoader(X, y, batch_size=4, seed=1)
    for _ in range(2):
        list(a)
    state = a.state_dict()
    expected = [yb._data.tolist() for _, yb in a]
    b = DataLoader(X, y, batch_size=4, seed=99)
    import json
    b.load_state_dict(json.loads(json.dumps(state)))  # survives a JSON round trip
    assert [yb._data.tolist() for _, yb in b] == expected and b.epoch == 3


def test_x_only_and_tensor_input():
    X, _ = _xy(6)
    out = list(DataLoader(cr.tensor(X), batch_size=4, shuffle=False))
    assert isinstance(out[0], cr.Tensor) and out[0].shape == (4, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(X=np.zeros((3, 2)), y=np.zeros(4)), "different lengths: 3 samples in X, 4 in y"),
    (dict(X=np.zeros((0, 2)), y=np.zeros(0)), "empty"),
    (dict(X=np.zeros((3, 2)), y=np.zeros(3), batch_size=0), "batch_size must be a positive integer"),
])
def test_loader_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataLoader(**kwargs)


def test_check_features_names_row_and_column():
    X = np.ones((4, 3)); X[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN at row 2, column 1"):
        check_features(X)
    X[2, 1] = np.inf
    with pytest.raises(ValueError, match="Inf at row 2, column 1"):
        check_features(X)
    with pytest.raises(ValueError, match="non-numeric value 'a' at row 1, column 0"):
        check_features(np.array([["1", "2"], ["a", "3"]], dtype=object))
    with pytest.raises(ValueError, match="2-D"):
        check_features(np.ones(3))


def test_check_X_y_single_class_and_lengths():
    with pytest.raises(ValueError, match="single class"):
        check_X_y(np.ones((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="different lengths"):
        check_X_y(np.ones((3, 2)), np.array([0, 1]))
    X, y = check_X_y(np.ones((2, 2)), [0, 1])
    assert X.dtype == np.float32


def test_train_test_split_is_sklearns():
    X, y = _xy(10)
    from sklearn.model_selection import train_test_split as sk
    ours, theirs = train_test_split(X, y, test_size=0.3, random_state=0), sk(X, y, test_size=0.3, random_state=0)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
