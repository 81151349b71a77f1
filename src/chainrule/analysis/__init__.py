"""Experiment analysis beyond accuracy: the lecture's "Tips for the Final Project: Analysis".

* Which features drive performance? :func:`weight_importance` reads the learned weights of linear
  and softmax models; :func:`ablation_importance` removes a feature (or a group) and re-trains;
  :func:`permutation_importance` shuffles a feature at test time (scikit-learn's implementation).
  (:mod:`~chainrule.analysis.importance`)
* How much data do the models need? :func:`sample_complexity` plots learning curves (scikit-learn's
  ``learning_curve``). (:mod:`~chainrule.analysis.learning_curves`)
* Are the models' errors correlated? :func:`error_correlation` gives the phi coefficient and Cohen's
  kappa of every pair of models, the error-overlap matrix and the "easy" / "hard" / "disputed"
  examples (:mod:`~chainrule.analysis.errors`); :class:`TrainingDynamics` records when each example
  is learned and forgotten (:mod:`~chainrule.analysis.dynamics`).

Everything works on any scikit-learn-compatible estimator (chainrule's own in
:mod:`chainrule.sklearn`, or scikit-learn's). Every result has ``.table()`` (printable),
``.to_dict()``, ``.to_csv(path)`` and ``.plot(path)`` (matplotlib, imported only when plotting).
``chainrule analyze`` (:mod:`chainrule.cli.analyze`) runs all of it on a data set and writes
figures and a markdown report.

Confidence intervals are Student-t intervals over folds (or repeats):
``mean ± t_{1-α/2, k-1} · s / sqrt(k)`` with ``s`` the sample standard deviation of the ``k`` values.
Folds share training data, so these intervals are somewhat optimistic (Nadeau & Bengio, 2003); they
are for ranking features and models, not for significance claims.
"""

from ._common import confidence_interval
from .dynamics import TrainingDynamics, track_training_dynamics
from .errors import ErrorCorrelationResult, error_correlation, phi_coefficient
from .estimators import MODELS, make_estimator
from .importance import ImportanceResult, ablation_importance, permutation_importance, weight_importance
from .learning_curves import SampleComplexityResult, sample_complexity

__all__ = ["MODELS", "ErrorCorrelationResult", "ImportanceResult", "SampleComplexityResult", "TrainingDynamics",
           "ablation_importance", "confidence_interval", "error_correlation", "make_estimator", "permutation_importance",
           "phi_coefficient", "sample_complexity", "track_training_dynamics", "weight_importance"]
