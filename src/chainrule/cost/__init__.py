"""Street-fighting math: estimate parameters, memory and compute of a network, and measure them.

The lecture ends with a back-of-the-envelope estimate for a network of size ``D x 2D`` trained on
batches of ``B`` examples:

- parameters: ``D x 2D``
- memory (inference): ``D x 2D`` (parameters) ``+ B x 2D`` (biggest activation)
- memory (training): ``D x 2D`` (parameters) ``+ 2 x D x 2D`` (Adam's ``m`` and ``v``)
  ``+ B x D + B x 2D`` (all activations)
- compute (inference): ``B x D x 2D`` (forward pass)
- compute (training): ``B x D x 2D`` (forward) ``+ 2 x B x D x 2D`` (backward: "because we compute
  derivatives with respect to both the weights and the input")

Compute is counted in multiply-adds there. :func:`estimate` (from a model) and :func:`estimate_mlp`
(from a list of layer sizes, no arrays built) give the lecture's figure *and* a full one that adds
what the lecture leaves out: biases, gradients (one number per parameter), the optimizer's scratch
buffers, the input batch, the inputs that an unfused activation keeps for its backward pass, the loss, the elementwise
work, and the first layer's input gradient that nobody needs (so the engine never computes it).
FLOPs are 2 per multiply-add.

:func:`measure` runs one real training step and one inference forward under instrumentation: FLOPs
come from the FLOP rules of the primitives that actually ran (``autograd.state.profiler``), and
memory from the arrays that were actually alive (each array the primitives produce is followed with
``weakref.finalize``; ``tracemalloc`` gives an independent total). :func:`report` prints estimate and
measurement side by side and explains every gap larger than 10%.

One idea per module: :mod:`~chainrule.cost.optimizers` (what an optimizer keeps and computes),
:mod:`~chainrule.cost.layers` (what each layer costs: a registry of rules keyed by layer type, so
a new layer is one function), :mod:`~chainrule.cost.estimation` (the estimate), :mod:`~chainrule.cost.lecture`
(the lecture's formulas with numbers), :mod:`~chainrule.cost.measurement` (the measurement) and
:mod:`~chainrule.cost.reporting` (the comparison). ``chainrule cost`` lives in :mod:`chainrule.cli.cost`.
"""

from .._text import human_bytes
from ..nn import module as _module
from .estimation import Estimate, estimate, estimate_mlp, summary_costs
from .layers import ACTIVATIONS, LayerCost, register
from . import layers_conv, layers_seq  # noqa: F401  (they register the rules of the other layers)
from .measurement import Measurement, measure
from .optimizers import OPTIMIZERS
from . import reporting

_module.SUMMARY_COSTS = summary_costs  # Module.summary(input_shape) shows each layer's costs
from .reporting import Report, comparison_rows, report

__all__ = ["ACTIVATIONS", "OPTIMIZERS", "Estimate", "LayerCost", "Measurement", "Report", "estimate", "estimate_mlp",
           "human_bytes", "measure", "register", "report"]
