"""Offline data sets and load_csv: dtypes, sizes, and clear errors for bad files."""

import random

import numpy as np
import pytest

from chainrule import datasets


@pytest.mark.parametrize("name, n, d, k", [
    ("digits", 1797, 64, 10), ("iris", 150, 4, 3), ("breast_cancer", 569, 30, 2),
    ("moons", 500, 2, 2), ("spirals", 600, 2, 3), ("xor", 400, 2, 2),
])
def test_bundled_sets(name, n, d, k):
    ds = datasets.load(name)
    X_train, X_test, y_train, y_test = ds
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert len(X_train) + len(X_test) == n and ds.n_features == d and ds.n_classes == k
    assert set(np.unique(y_train)) == set(range(k))
    # stratified split: every class in both parts
    assert set(np.unique(y_test)) == set(range(k))


def test_split_is_fixed_by_seed():
    a, b, c = datasets.load_iris(seed=1), datasets.load_iris(seed=1), datasets.load_iris(seed=2)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)


def test_mnist1d_offline_default_split_and_no_global_rng_side_effects():
    np.random.seed(123); random.seed(7)
    before = np.random.rand(), random.random()
    np.random.seed(123); random.seed(7)
    ds = datasets.make_mnist1d()
    after = np.random.rand(), random.random()
    assert before == after  # mnist1d reseeds the global generators; we restore them
    assert ds.X_train.shape == (4000, 40) and ds.X_test.shape == (1000, 40)
    assert ds.X_train.dtype == np.float32 and ds.y_test.dtype == np.int64 and ds.n_classes == 10


def _write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_csv_string_labels_and_target_column(tmp_path):
    rows = "\n".join(f"{i},{i % 3},{'cat' if i % 2 else 'dog'}" for i in range(20))
    p = _write(tmp_path, "a,b,animal\n" + rows + "\n")
    ds = datasets.load_csv(p, target="animal")
    assert ds.target_names == ["cat", "dog"] and ds.feature_names == ["a", "b"]
    assert ds.X_train.dtype == np.float32 and len(ds.y_train) + len(ds.y_test) == 20
    # labels stay with their rows: odd 'a' -> cat (code 0)
    X, y = ds.X, ds.y
    np.testing.assert_array_equal(y, (X[:, 0] % 2 == 0).astype(np.int64))
    # the default target is the last column
    assert datasets.load_csv(p).target_names == ["cat", "dog"]


def test_numeric_labels_sort_numerically(tmp_path):
    rows = "\n".join(f"{i},{[2, 10][i % 2]}" for i in range(10))
    ds = datasets.load_csv(_write(tmp_path, "x,y\n" + rows))
    assert ds.target_names == ["2", "10"]


@pytest.mark.parametrize("text, target, match", [
    ("a,b\n1,0\n2,1\n", "label", r"no target column 'label'; the columns are \['a', 'b'\]"),
    ("a,y\n1,0\nfoo,1\n", None, "column 'a' has the non-numeric value 'foo' at line 3"),
    ("a,y\n1,0\n,1\n", None, "column 'a' has an empty value at line 3"),
    ("a,y\n1,0\nnan,1\n", None, "column 'a' has nan at line 3"),
    ("a,y\n1,0\n2,0\n", None, "single class"),
    ("", None, "empty"),
    ("a,y\n", None, "no data rows"),
    ("a,y\n1,0\n2\n", None, "line 3 has 1 fields"),
    ("a,a,y\n1,2,0\n2,3,1\n", None, r"duplicate column name\(s\) \['a'\]"),
])
def test_load_csv_errors(tmp_path, text, target, match):
    with pytest.raises(ValueError, match=match):
        datasets.load_csv(_write(tmp_path, text), target=target)


def test_continuous_target_is_regression_unless_classification_is_asked_for(tmp_path):
    rows = "\n".join(f"{i},{0.37 * i:.2f}" for i in range(50))
    path = _write(tmp_path, "a,y\n" + rows)
    ds = datasets.load_csv(path)
    assert ds.task == "regression" and ds.y_train.dtype == np.float32 and ds.target_names == ["y"]
    np.testing.assert_allclose(np.sort(ds.y), np.round(0.37 * np.arange(50), 2), rtol=1e-6)
    with pytest.raises(ValueError, match="target column 'y' holds non-integer numbers \\(0.37 at line 3\\)"):
        datasets.load_csv(path, task="classification")
    many = _write(tmp_path, "a,y\n" + "\n".join(f"{i},{(i * 7919) % 300}" for i in range(400)))
    assert datasets.load_csv(many).task == "regression"  # 300 distinct integers in 400 rows: not classes
    assert datasets.load_csv(many, task="classification").n_classes > 100


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(FileNotFoundError):
        datasets.load_csv(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        datasets.load("mnist")


def test_read_csv_features_by_name(tmp_path):
    p = _write(tmp_path, "b,a,y\n1,2,x\n3,4,z\n")
    np.testing.assert_array_equal(datasets.read_csv_features(p, ["a", "b"]), [[2, 1], [4, 3]])
    with pytest.raises(ValueError, match=r"missing feature column\(s\) \['c'\]"):
        datasets.read_csv_features(p, ["a", "c"])
