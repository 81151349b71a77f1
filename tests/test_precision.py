"""Half precision accumulates like torch, log_softmax keeps precision for large logits, anomaly mode
reports user code under any folder (even one named chainrule), and hvp takes a single tensor."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F


def test_half_precision_losses_accumulate_in_float32_like_torch(torch):
    rng = np.random.default_rng(0)
    x = rng.choice([-6e4, 6e4], size=64).astype(np.float16)
    y = (rng.random(64) > 0.5).astype(np.float16)
    got = F.binary_cross_entropy_with_logits(cr.tensor(x, dtype=cr.float16), cr.tensor(y, dtype=cr.float16))
    want = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y))
    assert got.dtype == cr.float16 and np.isfinite(got.item())
    assert got.item() == want.item()
    z = (rng.standard_normal((4, 1000)) * 10).astype(np.float16)
    a = F.log_softmax(cr.tensor(z, dtype=cr.float16), dim=1).numpy().astype(np.float64)
    b = torch.log_softmax(torch.tensor(z), dim=1).numpy().astype(np.float64)
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-3)  # a few float16 ulps, not 15%
    m = cr.mean(cr.tensor(np.full(10_000, 10.0, np.float16), dtype=cr.float16))
    assert m.item() == torch.tensor(np.full(10_000, 10.0, np.float16)).mean().item() == 10.0


def test_log_softmax_of_large_float32_logits_matches_torch(torch):
    z = (np.random.default_rng(1).standard_normal((4, 10)) + 1000).astype(np.float32)
    a = F.log_softmax(cr.tensor(z), dim=1).numpy()
    b = torch.log_softmax(torch.tensor(z), dim=1).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_anomaly_mode_names_user_code_in_a_folder_named_chainrule(tmp_path):
    user = tmp_path / "chainrule" / "experiments"
    user.mkdir(parents=True)
    (user / "script.py").write_text(textwrap.dedent("""
        import chainrule as cr
        x = cr.tensor([0.0, 1.0], requires_grad=True)
        with cr.detect_anomaly():
            y = cr.log(x)  # log(0) = -inf: the line anomaly mode must point at
    """))
    res = subprocess.run([sys.executable, str(user / "script.py")], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "script.py" in res.stderr and "y = cr.log(x)" in res.stderr
    assert "created outside anomaly mode" not in res.stderr


def test_hvp_takes_a_single_tensor_and_checks_shapes():
    w = cr.tensor([1.0, 2.0], dtype=cr.float64, requires_grad=True)
    f = lambda: (w ** 3).sum()  # H = diag(6 w)
    (hv,) = cr.hvp(f, w, cr.tensor([1.0, 1.0], dtype=cr.float64))
    np.testing.assert_allclose(hv.numpy(), [6.0, 12.0])
    with pytest.raises(ValueError, match="v must match params"):
        cr.hvp(f, [w], [np.ones(3)])
