"""torch.nn.utils: gradient clipping and parameter vectors, against torch 2.13, and replayed by cr.compile."""

import math

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F


def _pair(torch, scale):
    """The same two-layer net in both libraries, with gradients of one batch (scaled up by ``scale``)."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(5, 3), (5,), (2, 5), (2,)]]
    x, y = rng.standard_normal((7, 3)).astype(np.float32), rng.integers(0, 2, 7)
    c = [cr.tensor(a, requires_grad=True) for a in arrays]
    t = [torch.tensor(a, requires_grad=True) for a in arrays]
    cr_loss = F.cross_entropy(F.linear(F.relu(F.linear(cr.tensor(x), c[0], c[1])), c[2], c[3]), cr.tensor(y)) * scale
    t_loss = torch.nn.functional.cross_entropy(
        torch.nn.functional.linear(torch.relu(torch.nn.functional.linear(torch.tensor(x), t[0], t[1])), t[2], t[3]),
        torch.tensor(y)) * scale
    cr_loss.backward()
    t_loss.backward()
    return c, t


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm,scale", [(0.5, 10.0), (100.0, 1.0)])  # clipped, and left alone
def test_clip_grad_norm_equals_torch(torch, norm_type, max_norm, scale):
    c, t = _pair(torch, scale)
    got = nn.utils.clip_grad_norm_(c, max_norm, norm_type=norm_type)
    want = torch.nn.utils.clip_grad_norm_(t, max_norm, norm_type=norm_type)
    np.testing.assert_allclose(got.item(), want.item(), rtol=1e-6)
    for a, b in zip(c, t):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6, atol=1e-7)
    after = nn.utils.get_total_norm([p.grad for p in c], norm_type).item()
    assert after <= max_norm * (1 + 1e-5) and (scale == 1.0) == (abs(after - got.item()) < 1e-5 * got.item())


def test_clip_grad_value_and_skipped_parameters(torch):
    c, t = _pair(torch, 10.0)
    frozen = cr.zeros(3, requires_grad=True)  # no gradient: skipped, as torch skips it
    nn.utils.clip_grad_value_([*c, frozen], 0.2)
    torch.nn.utils.clip_grad_value_(t, 0.2)
    for a, b in zip(c, t):  # the gradients themselves agree to float32 rounding
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-6)
        assert np.abs(a.grad.numpy()).max() <= np.float32(0.2)
    assert frozen.grad is None
    assert nn.utils.clip_grad_norm_([frozen], 1.0).item() == 0.0


def test_clip_errors_name_the_value():
    c = cr.ones(2, requires_grad=True)
    (c * float("inf")).sum().backward()
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is inf"):
        nn.utils.clip_grad_norm_(c, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm must be >= 0, got -1"):
        nn.utils.clip_grad_norm_(c, -1)
    with pytest.raises(ValueError, match="clip_value must be >= 0, got -0.5"):
        nn.utils.clip_grad_value_(c, -0.5)


def test_parameters_to_vector_and_back(torch):
    m, tm = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in m.state_dict().items()})
    v, tv = nn.utils.parameters_to_vector(m.parameters()), torch.nn.utils.parameters_to_vector(tm.parameters())
    np.testing.assert_array_equal(v.numpy(), tv.detach().numpy())
    new = cr.arange(8, dtype=cr.float32)
    nn.utils.vector_to_parameters(new, m.parameters())
    torch.nn.utils.vector_to_parameters(torch.arange(8, dtype=torch.float32), tm.parameters())
    for a, b in zip(m.parameters(), tm.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.detach().numpy())
    with pytest.raises(ValueError, match="the vector has 7 elements but the parameters hold 8"):
        nn.utils.vector_to_parameters(cr.zeros(7), m.parameters())


def test_a_step_that_clips_its_gradients_is_replayed():
    rng = np.random.default_rng(1)
    batches = [(cr.tensor(rng.standard_normal((8, 4)).astype(np.float32) * 5), cr.tensor(rng.integers(0, 3, 8)))
               for _ in range(6)]

    def trainer():
        cr.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        opt = cr.optim.SGD(model.parameters(), lr=0.5)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            opt.step()
            return loss, norm
        return model, step

    model, step = trainer()
    run = cr.compile(step)
    outs = [run(x, y) for x, y in batches]
    assert run.calls == {"recorded": 2, "replayed": 4, "eager": 0}
    eager_model, eager = trainer()
    for (x, y), (loss, norm) in zip(batches, outs):
        want_loss, want_norm = eager(x, y)
        assert np.array_equal(loss.numpy(), want_loss.numpy()) and np.array_equal(norm.numpy(), want_norm.numpy())
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(model.parameters(), eager_model.parameters()))
