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
NEEDS: dict[str, str] = {}  # every script runs on chainrule now; a script that cannot yet goes here with what it needs

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
