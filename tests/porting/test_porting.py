"""Real PyTorch scripts (tests/porting/scripts), run on torch and on chainrule with only the imports changed.

Each script is run twice in subprocesses (runner.run_both) and its RESULT lines compared number by
number. A script that needs a part of torch's surface chainrule does not have yet is an expected
failure naming exactly what it needs (strict: it must be flipped when the feature lands).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runner import SCRIPTS, ChainruleRunFailed, run_both, to_chainrule  # noqa: E402

# What each script needs that chainrule lacks today (found by running it; the later items with a throwaway
# stand-in for the earlier ones). Remove a script's entry when its needs have landed: strict xfail fails then.
NEEDS: dict[str, str] = {
    "basics_autograd": "Tensor.t(); backward(gradient=)",
    "basics_buildmodel": "torch.accelerator.is_available/current_accelerator; torch.from_numpy; Tensor.to(device); Module.to(device)",
    "basics_optimization": "torch.from_numpy; dtype aliases (torch.float); Tensor.type(dtype)",
    "basics_quickstart": "torch.from_numpy; torch.accelerator; dtype aliases (torch.float); Tensor.type(dtype); Tensor.to(device); Module.to(device)",
    "basics_tensors": "torch.from_numpy; torch.rand_like; Tensor.device; torch.accelerator; torch.cat(dim=); torch.matmul(out=); torch.mul(out=); Tensor.mul; dtype aliases (torch.float)",
    "blitz_autograd": "torch.from_numpy; backward(gradient=); an optimizer given requires_grad=False parameters skips them",
    "blitz_nn": "torch.from_numpy; backward(gradient=); grad_fn.next_functions; Tensor.sub_",
    "loeber_linear_regression": "torch.from_numpy",
    "loeber_logistic_regression": "torch.from_numpy; Tensor.round; Tensor.eq",
    "loeber_training_pipeline": "torch.from_numpy",
    "lpwe_autograd": "dtype aliases (torch.float); torch.set_default_device",
    "lpwe_custom_function": "torch.autograd.Function (ctx.save_for_backward, ctx.saved_tensors, .apply); dtype aliases (torch.float); torch.device; device= on creation functions",
    "lpwe_nn": "torch.from_numpy",
    "lpwe_optim": "torch.from_numpy",
    "lpwe_tensors": "dtype aliases (torch.float); torch.device; device= on creation functions",
    "lpwe_two_layer_autograd": "dtype aliases (torch.float); torch.device; device= on creation functions; Tensor.mm",
    "lpwe_two_layer_tensors": "dtype aliases (torch.float); torch.device; torch.from_numpy; Tensor.to(device); Tensor.to(device, dtype); Tensor.type(dtype); Tensor.mm; Tensor.t()",
    "micrograd_moons": "torch.from_numpy",
    "micrograd_more_ops_inplace": "in-place += on a non-leaf tensor that requires grad; Tensor.__format__ with a format spec",
    "nn_really_fit": "torch.from_numpy",
    "nn_really_functional": "torch.from_numpy; torch.argmax(x, dim=)",
    "nn_really_linear_optim": "torch.from_numpy",
    "nn_really_scratch": "torch.from_numpy; torch.argmax(x, dim=)",
    "yunjey_feedforward": "torch.utils attribute (`from . import utils` in chainrule/__init__.py); torch.from_numpy; torch.device; torch.cuda.is_available; Tensor.to(device); Module.to(device); torch.max(x, dim) -> (values, indices)",
    "yunjey_linear_regression": "torch.from_numpy",
    "yunjey_logistic_regression": "torch.utils attribute (`from . import utils` in chainrule/__init__.py); torch.from_numpy; torch.max(x, dim) -> (values, indices)",
    "zero_to_gans_linear_builtins": "torch.from_numpy",
    "zero_to_gans_linear_regression": "torch.from_numpy; Tensor.t()",
}

SCRIPT_NAMES = sorted(p.stem for p in SCRIPTS.glob("*.py") if not p.name.startswith("_"))


def _param(name):
    marks = [pytest.mark.xfail(strict=True, raises=ChainruleRunFailed, reason=f"needs: {NEEDS[name]}")] if name in NEEDS else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in SCRIPT_NAMES])
def test_script_gives_torchs_numbers_on_chainrule(torch, name, tmp_path):
    assert run_both(SCRIPTS / f"{name}.py", tmp_path) > 0


def test_every_expected_failure_names_a_script():
    assert set(NEEDS) <= set(SCRIPT_NAMES), sorted(set(NEEDS) - set(SCRIPT_NAMES))


def test_import_rewrite_changes_only_torch_imports():
    src = ("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\nfrom torch import nn, optim\n"
           "from torch.utils.data import DataLoader, TensorDataset\nimport torch.optim\n    import torch  # lazy\n"
           "x = torch.ones(3)  # import torch stays in comments\nimport torchvision_like_name_is_not_touched\n")
    assert to_chainrule(src).splitlines() == [
        "import chainrule as torch", "import chainrule.nn as nn", "import chainrule.nn.functional as F",
        "from chainrule import nn, optim", "from chainrule.utils.data import DataLoader, TensorDataset",
        "import chainrule as torch; import chainrule.optim", "    import chainrule as torch",
        "x = torch.ones(3)  # import torch stays in comments", "import torchvision_like_name_is_not_touched"]
    with pytest.raises(ValueError, match="cannot rewrite"):
        to_chainrule("import torch, numpy\n")
