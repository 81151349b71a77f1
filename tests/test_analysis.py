"""chainrule.analysis on synthetic data with known structure: y depends on features 0 and 1 only,
features 2.. are noise. Every importance method must rank the informative features first; learning
curves must rise; identical models must have perfectly correlated errors."""

import csv
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from chainrule import analysis as A

# Short trainings on purpose (speed); convergence is not what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny problems: BLAS threads only contend with the other test workers (10x slower under load)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def make_data(n=300, k=6, classes=2, scale1=100.0, seed=0):
    """x0 and x1 carry the signal (x1 on a 100x larger scale); the rest is noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, k))
    X[:, 1] *= scale1
    s = X[:, 0] + X[:, 1] / scale1
    if classes == 2:
        y = (s > 0).astype(int)
    else:
        y = np.digitize(X[:, 0] - X[:, 1] / scale1, [-0.6, 0.6]) + 0  # 3 bands
    return X, y


INFORMATIVE = {"x0", "x1"}


def png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----- importance ---------------------------------------------------------------------------------
def test_weight_importance_is_coefficient_times_std_and_ranks_signal_first(tmp_path):
    X, y = make_data()
    model = LogisticRegression().fit(X, y)
    r = A.weight_importance(model, X=X)
    assert np.allclose(r.mean, np.abs(model.coef_[0]) * X.std(axis=0))
    assert set(r.ranking()[:2]) == INFORMATIVE
    # Without the scaling, x1's coefficient is 100x smaller than x0's: the std is what makes them compare.
    raw = A.weight_importance(model)
    assert raw.mean[1] < raw.mean[0] / 20
    assert r.mean[1] > r.mean[0] / 5
    assert len(r.records()) == 6 and r.records()[0]["rank"] == 1
    assert png(r.plot(tmp_path / "w.png"))


def test_weight_importance_softmax_per_class_centred_and_through_pipeline():
    X, y = make_data(n=450, classes=3)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    names = [f"f{j}" for j in range(X.shape[1])]
    r = A.weight_importance(pipe, names, X)
    W = pipe[-1].coef_ - pipe[-1].coef_.mean(axis=0)
    sigma = pipe[0].transform(X).std(axis=0)   # ~1: the weights refer to standardised inputs
    assert r.per_class.shape == (3, 6) and list(r.classes) == [0, 1, 2]
    assert np.allclose(r.per_class, np.abs(W) * sigma)
    assert np.allclose(r.mean, r.per_class.mean(axis=0))
    assert set(r.ranking()[:2]) == {"f0", "f1"}


def test_weight_importance_rejects_models_without_weights():
    X, y = make_data(n=60)
    with pytest.raises(TypeError, match="ablation_importance"):
        A.weight_importance(DecisionTreeClassifier().fit(X, y), X=X)


def test_ablation_importance_ranks_signal_first_with_positive_ci():
    X, y = make_data()
    r = A.ablation_importance(LogisticRegression(), X, y, cv=3, n_jobs=1)
    assert set(r.ranking()[:2]) == INFORMATIVE
    for j in (0, 1):
        assert r.ci_low[j] > 0, "removing an informative feature must hurt on every fold"
    for j in range(2, 6):
        assert abs(r.mean[j]) < 0.05
    assert r.scores.shape == (6, 3) and 0.9 < r.baseline <= 1.0


def test_ablation_groups_as_dict_and_lists_in_parallel():
    X, y = make_data()
    r = A.ablation_importance(LogisticRegression(), X, y, features={"signal": [0, 1], "noise": [2, 3, 4, 5]},
                              cv=3, n_jobs=2, n_repeats=2)
    assert r.ranking() == ["signal", "noise"]
    assert r.scores.shape == (2, 6)   # 3 folds x 2 repeats, paired with the baseline
    assert r.mean[0] > 0.3            # without x0 and x1 the labels are a coin flip
    r2 = A.ablation_importance(LogisticRegression(), X, y, features=[[0, 1], [4]], cv=3, n_jobs=1)
    assert r2.names == ["x0+x1", "x4"] and r2.groups == [[0, 1], [4]]
    assert np.allclose(r2.mean[0], r.mean[0], atol=0.1)
    with pytest.raises(ValueError, match="removes every feature"):
        A.ablation_importance(LogisticRegression(), X, y, features=[list(range(6))], cv=3, n_jobs=1)


def test_permutation_importance_delegates_and_ranks_signal_first():
    X, y = make_data()
    r = A.permutation_importance(LogisticRegression(), X, y, n_repeats=5, random_state=0)
    assert set(r.ranking()[:2]) == INFORMATIVE
    assert r.scores.shape == (6, 5)
    fitted = LogisticRegression().fit(X, y)   # a fitted model is scored as it is, on X_test
    r2 = A.permutation_importance(fitted, X, y, X_test=X[:100], y_test=y[:100], n_repeats=3)
    from sklearn.inspection import permutation_importance as sk
    ref = sk(fitted, X[:100], y[:100], n_repeats=3, random_state=0)
    assert np.allclose(r2.mean, ref.importances_mean)


def test_importance_all_methods_agree_on_top_features_for_a_nonlinear_model():
    X, y = make_data(n=300)
    tree = DecisionTreeClassifier(max_depth=4, random_state=0)
    abl = A.ablation_importance(tree, X, y, cv=3, n_jobs=1)
    perm = A.permutation_importance(tree, X, y, n_repeats=5)
    assert set(abl.ranking()[:2]) == INFORMATIVE and set(perm.ranking()[:2]) == INFORMATIVE


def test_confidence_interval_matches_t_formula():
    v = np.array([[1.0, 2.0, 4.0]])
    lo, hi = A.confidence_interval(v, 0.95)
    half = 4.302652729911275 * np.std(v, ddof=1) / np.sqrt(3)   # t_{0.975, 2}
    assert lo[0] == pytest.approx(7 / 3 - half) and hi[0] == pytest.approx(7 / 3 + half)


# ----- sample complexity --------------------------------------------------------------------------
def test_sample_complexity_score_rises_with_data(tmp_path):
    X, y = make_data(n=600, k=12)
    r = A.sample_complexity({"lr": LogisticRegression(), "tree": DecisionTreeClassifier(random_state=0)}, X, y,
                            train_sizes=[15, 50, 150, 400], cv=3, n_jobs=1)
    for name, c in r.curves.items():
        v = c["val_scores"].mean(axis=1)
        assert list(c["train_sizes"]) == [15, 50, 150, 400]
        assert v[-1] > v[0] + 0.03, name
    recs = r.records()
    assert len(recs) == 8 and {"model", "n_train", "val_mean", "val_ci_low"} <= set(recs[0])
    with (r.to_csv(tmp_path / "sc.csv")).open() as f:
        assert len(list(csv.DictReader(f))) == 8
    assert png(r.plot(tmp_path / "sc.png", log_x=True))
    json.dumps(r.to_dict())


# ----- error correlation --------------------------------------------------------------------------
def test_identical_models_have_error_correlation_one_and_nothing_disputed(tmp_path):
    X, y = make_data()
    r = A.error_correlation({"a": LogisticRegression(), "b": LogisticRegression()}, X, y, cv=3)
    assert r.phi[0, 1] == 1.0 and r.kappa[0, 1] == 1.0
    assert len(r.disputed) == 0
    assert len(r.hard) == r.overlap[0, 1] == r.overlap[0, 0] > 0
    assert len(r.easy) + len(r.hard) == len(y)
    assert png(r.plot(tmp_path / "ec.png"))
    json.dumps(r.to_dict())


def test_error_correlation_matches_independent_formulas():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 200)
    preds = {m: np.where(rng.random(200) < 0.3, rng.integers(0, 3, 200), y) for m in ("p", "q", "r")}
    r = A.error_correlation(preds, y=y)
    E = np.stack([p != y for p in preds.values()]).astype(float)
    assert np.allclose(r.phi, np.corrcoef(E))
    # Cohen's kappa from its definition: (p_o - p_e) / (1 - p_e).
    a, b = preds["p"], preds["q"]
    po = np.mean(a == b)
    pe = sum(np.mean(a == k) * np.mean(b == k) for k in range(3))
    assert r.kappa[0, 1] == pytest.approx((po - pe) / (1 - pe))
    assert np.array_equal(r.overlap, E @ E.T)
    wrong = E.sum(axis=0)
    assert np.array_equal(r.easy, np.flatnonzero(wrong == 0))
    assert np.array_equal(r.hard, np.flatnonzero(wrong == 3))
    assert np.array_equal(r.disputed, np.flatnonzero((wrong > 0) & (wrong < 3)))
    assert sorted(np.concatenate([r.easy, r.hard, r.disputed]).tolist()) == list(range(200))
    rows = r.records()
    assert [(d["model_a"], d["model_b"]) for d in rows] == [("p", "q"), ("p", "r"), ("q", "r")]
    assert "disputed" in r.table()
    with pytest.raises(ValueError, match="at least two"):
        A.error_correlation({"p": preds["p"]}, y=y)


def test_phi_coefficient_edge_cases():
    assert A.phi_coefficient([0, 1, 1, 0], [1, 0, 0, 1]) == pytest.approx(-1.0)
    assert A.phi_coefficient([0, 0, 0], [0, 0, 0]) == 1.0
    assert np.isnan(A.phi_coefficient([0, 0, 0], [0, 1, 0]))


def test_prefit_models_use_their_own_predictions():
    X, y = make_data()
    m1 = LogisticRegression().fit(X, y)
    m2 = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    r = A.error_correlation([m1, m2], X, y, cv="prefit")
    assert r.names == ["LogisticRegression", "DecisionTreeClassifier"]
    assert np.array_equal(r.predictions[0], m1.predict(X))


# ----- training dynamics --------------------------------------------------------------------------
def test_training_dynamics_first_learned_and_forgetting_events_by_hand():
    C = np.array([[0, 1, 1, 0],     # epoch 0
                  [1, 0, 1, 0],     # epoch 1: example 1 forgotten
                  [1, 1, 0, 0],     # epoch 2: example 2 forgotten
                  [0, 1, 1, 0]])    # epoch 3: example 0 forgotten
    d = A.TrainingDynamics.from_correctness(C)
    assert d.first_learned.tolist() == [1, 0, 0, -1]
    assert d.forgetting.tolist() == [1, 1, 1, 0]
    assert d.never_learned.tolist() == [3] and d.unforgettable.tolist() == []
    recs = d.records()
    assert [r["forgotten_now"] for r in recs] == [0, 1, 1, 1]
    assert [r["first_learned_now"] for r in recs] == [2, 1, 0, 0]


def test_training_dynamics_record_and_callback_forms():
    X = np.arange(6.0).reshape(-1, 1)
    y = np.array([0, 0, 0, 1, 1, 1])

    class Threshold:
        def __init__(self, t): self.t = t
        def predict(self, X): return (X[:, 0] > self.t).astype(int)

    d = A.TrainingDynamics(X, y)
    d.record(Threshold(0.5))              # wrong on 1, 2
    d(epoch=1, model=Threshold(2.5))      # all right
    d(Threshold(3.5))                     # forgets 3
    assert d.correct.shape == (3, 6)
    assert d.first_learned.tolist() == [0, 1, 1, 0, 0, 0]
    assert d.forgetting.tolist() == [0, 0, 0, 1, 0, 0]


def test_track_training_dynamics_with_partial_fit(tmp_path):
    X, y = make_data(n=200)
    d = A.track_training_dynamics(SGDClassifier(random_state=0), StandardScaler().fit_transform(X), y, epochs=5)
    assert d.correct.shape == (5, 200) and d.epochs == 5
    assert d.correct[-1].mean() > 0.8
    assert png(d.plot(tmp_path / "d.png"))
    assert "forgetting events" in d.table()
    with pytest.raises(TypeError, match="partial_fit"):
        A.track_training_dynamics(LogisticRegression(), X, y)


# ----- the command --------------------------------------------------------------------------------
def test_analyze_command_writes_report_and_figures(tmp_path, capsys):
    from chainrule import cli

    out = tmp_path / "run"
    rc = cli.main(["analyze", "--data", "digits", "--models", "logreg,mlp", "--out", str(out), "--cv", "2",
                   "--max-samples", "200", "--n-jobs", "1", "--max-epochs", "3", "--epochs-dynamics", "2"])
    assert rc == 0
    report = (out / "report.md").read_text()
    for section in ("Weight importance", "Ablation importance", "Permutation importance", "Sample complexity",
                    "Error correlation"):
        assert section in report
    for fig in ("weights_logreg.png", "ablation_logreg.png", "sample_complexity.png", "error_correlation.png",
                "examples.png"):
        assert png(out / fig) and f"({fig})" in report
    with (out / "ablation_logreg.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 8   # digits: one group per pixel row


def test_analyze_command_rejects_unknown_model(tmp_path, capsys):
    from chainrule import cli

    assert cli.main(["analyze", "--models", "logreg,svm", "--out", str(tmp_path)]) == 2
    assert "unknown model 'svm'" in capsys.readouterr().err


# ----- chainrule's own estimators -----------------------------------------------------------------
def test_chainrule_estimators_weight_and_ablation_rank_signal_first():
    import chainrule.sklearn as crsk
    X, y = make_data(n=240, classes=3, scale1=1.0)
    Xs = StandardScaler().fit_transform(X)
    model = crsk.SoftmaxRegression(max_epochs=30, learning_rate=0.05, random_state=0).fit(Xs, y)
    r = A.weight_importance(model, X=Xs)
    W = model.model_.linear.weight._data.astype(float)
    assert np.allclose(r.per_class, np.abs(W - W.mean(axis=0)) * Xs.std(axis=0), rtol=1e-5)
    assert set(r.ranking()[:2]) == INFORMATIVE
    # Two-class softmax: only w_1 - w_0 is identified, so both classes get |w_1 - w_0| / 2 * sigma.
    yb = (y == 2).astype(int)
    sm2 = crsk.SoftmaxRegression(max_epochs=5, random_state=0).fit(Xs, yb)
    r2 = A.weight_importance(sm2, X=Xs)
    W2 = sm2.model_.linear.weight._data.astype(float)
    assert np.allclose(r2.per_class[0], r2.per_class[1])
    assert np.allclose(r2.mean, np.abs(W2[1] - W2[0]) / 2 * Xs.std(axis=0), rtol=1e-5)
    mlp = crsk.MLPClassifier((16,), max_epochs=25, learning_rate=0.02, random_state=0)
    abl = A.ablation_importance(mlp, Xs, y, features={"signal": [0, 1], "noise": [2, 3, 4, 5]}, cv=3, n_jobs=1)
    assert abl.ranking() == ["signal", "noise"] and abl.ci_low[0] > 0


def test_chainrule_identical_estimators_have_identical_errors():
    import chainrule.sklearn as crsk
    X, y = make_data(n=150)
    Xs = StandardScaler().fit_transform(X)
    est = lambda: crsk.MLPClassifier((8,), max_epochs=10, learning_rate=0.02, random_state=3)
    r = A.error_correlation({"a": est(), "b": est()}, Xs, y, cv=3)
    assert r.phi[0, 1] == 1.0 and len(r.disputed) == 0


def test_training_dynamics_as_a_chainrule_train_callback():
    import chainrule as cr
    import chainrule.train as train
    from chainrule.models import MLP

    X, y = make_data(n=200, scale1=1.0)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    cr.manual_seed(0)
    net = MLP([6, 16, 2], dropout=0.5)
    dyn = A.TrainingDynamics(X, y)
    train.fit(net, "cross_entropy", cr.optim.Adam(net.parameters(), lr=0.02), (X, y), epochs=4, callbacks=[dyn],
              progress=False, seed=0)
    assert dyn.correct.shape == (4, 200)
    # Recorded in eval mode (no dropout): the last row is exactly the trained network's predictions.
    net.eval()
    with cr.no_grad():
        pred = net(cr.tensor(X))._data.argmax(axis=1)
    assert np.array_equal(dyn.correct[-1], pred == y)
    assert dyn.correct[-1].mean() > 0.8
    net.train()
    row = dyn.record(net)   # a Module directly: evaluated in eval mode, its mode restored afterwards
    assert net.training is True and np.array_equal(row, pred == y)
