"""The ensemble against a member-by-member dense reference, the exact decomposition, training,
checkpoint/resume, and input checks."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from lanic_hub.classifier import DiagnosticClassifier
from lanic_hub.decomposition import decompose, latent_logit_weights
from lanic_hub.errors import ConfigError, DataError
from lanic_hub.transcoders import TrainConfig, TranscoderConfig, TranscoderEnsemble, fidelity, train_ensemble

from .reference import dense_loss

CFG = TranscoderConfig(d_in=8, d_out=6, n_latents=16, k=4, n_members=3, levels=(4, 8, 16), seed=1)


def _randomise(m: TranscoderEnsemble) -> None:
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def _reference(m: TranscoderEnsemble, e: torch.Tensor, limit: int | None = None):
    """Each member computed alone, densely, straight from the formula."""
    cfg = m.cfg
    T, L = cfg.n_members, cfg.n_latents
    W = m.W_enc.view(cfg.d_in, T, L)
    outs, zs = [], []
    for t in range(T):
        pre = torch.relu((e - m.b_pre[t]) @ W[:, t, :] + m.b_enc.view(T, L)[t])
        v, i = pre.topk(cfg.k, dim=-1)
        z = torch.zeros_like(pre).scatter_(-1, i, v)
        if limit is not None:
            z[:, limit:] = 0
        zs.append(z)
        outs.append(z @ m.W_dec[t] + m.b_dec[t])
    return torch.stack(outs, 1), torch.stack(zs, 1)


def test_forward_equals_member_by_member_reference():
    m = TranscoderEnsemble(CFG)
    _randomise(m)
    e = torch.randn(10, 8)
    out = m(e)
    ref, z = _reference(m, e)
    assert torch.allclose(out.recon, ref, atol=1e-5)
    assert torch.allclose(m.dense_codes(e), z, atol=1e-6)
    for lim in (4, 8):
        r_lim, _ = _reference(m, e, limit=lim)
        assert torch.allclose(m.decode(out.values, out.indices, limit=lim), r_lim, atol=1e-5)


@pytest.mark.parametrize("trained", [False, True])
def test_exact_decomposition(trained):
    torch.manual_seed(0)
    clf = DiagnosticClassifier(8, 6, 5)
    e = torch.randn(64, 8)
    h = clf.hidden(e).detach()
    if trained:
        m, _ = train_ensemble(e, h, CFG, TrainConfig(epochs=30, batch_size=32), progress=False)
    else:
        m = TranscoderEnsemble(CFG)
        _randomise(m)
    with torch.no_grad():
        v, i = m.encode(e)
        recon_mean = m.decode(v, i).mean(1)
        d = decompose(
            v,
            i,
            h,
            recon_mean,
            clf.fc2.weight,
            clf.fc2.bias,
            m.b_dec,
            U=latent_logit_weights(m.W_dec, clf.fc2.weight),
        )
        # ensemble path: b2 + W2 · mean_t ĥ_t, written out from the formula
        ens = clf.fc2(recon_mean)
        assert torch.allclose(d.ensemble_logits, ens, atol=1e-5)
        # the classifier's own logit = ensemble path + W2 · (h - ĥ)
        assert torch.allclose(d.logits, clf(e), atol=1e-5)
        # each contribution is (z / T) · (W2_c · W_dec_t[:, i])
        b, t, j, c = 3, 1, 2, 4
        want = v[b, t, j] / CFG.n_members * (clf.fc2.weight[c] @ m.W_dec[t, i[b, t, j]])
        assert torch.allclose(d.contributions[b, t, j, c], want, atol=1e-6)


def _toy_problem(n_rows: int, n_members: int):
    """A random classifier's hidden layer on `n_rows` unit embeddings, and a small ensemble's config."""
    torch.manual_seed(0)
    clf = DiagnosticClassifier(16, 12, 5)
    e = torch.nn.functional.normalize(torch.randn(n_rows, 16), dim=1)
    h = clf.hidden(e).detach()
    return e, h, TranscoderConfig(d_in=16, d_out=12, n_latents=64, k=8, n_members=n_members, seed=0)


def test_training_reduces_fvu_and_matryoshka_levels_are_nested():
    e, h, cfg = _toy_problem(512, n_members=4)
    before = fidelity(TranscoderEnsemble(cfg), e, h)
    m, rep = train_ensemble(e, h, cfg, TrainConfig(epochs=60, batch_size=128), progress=False)
    after = fidelity(m, e, h)
    full = str(cfg.n_latents)
    assert max(after["fvu"][full]) < 0.25 < min(before["fvu"][full])
    levels = [str(x) for x in cfg.resolved_levels]
    for t in range(cfg.n_members):  # more latents, better reconstruction
        f = [after["fvu"][lv][t] for lv in levels]
        assert f == sorted(f, reverse=True)
    assert all(l0 <= cfg.k for l0 in after["l0"])
    assert torch.allclose(m.W_dec.norm(dim=-1), torch.ones(4, 64), atol=1e-5)


def test_bad_input_is_refused_before_training():
    with pytest.raises(ConfigError, match="exceeds"):
        TranscoderConfig(d_in=8, d_out=6, n_latents=16, k=17)
    with pytest.raises(ConfigError, match="levels"):
        TranscoderConfig(d_in=8, d_out=6, n_latents=16, k=4, levels=(8, 4, 16))
    e, h = torch.randn(20, 8), torch.randn(20, 6)
    e[3, 2] = float("nan")
    with pytest.raises(DataError, match=r"rows \[3\]"):
        train_ensemble(e, h, CFG, progress=False)
    with pytest.raises(DataError, match="width 5"):
        train_ensemble(torch.randn(20, 5), h, CFG, progress=False)
    with pytest.raises(DataError, match="no training rows"):
        train_ensemble(torch.zeros(0, 8), torch.zeros(0, 6), CFG, progress=False)


def test_divergence_is_an_error_naming_the_step():
    e, h = torch.randn(64, 8), torch.randn(64, 6)
    with pytest.raises(DataError, match=r"training diverged at epoch 1, step \d+"):
        train_ensemble(e, h, CFG, TrainConfig(epochs=3, batch_size=32, lr=1e30), progress=False)


def test_sparse_encoder_backward_equals_dense_autograd():
    """encode_for_training's sparse backward (TopK before ReLU, CSR product, folded b_pre) gives
    the same loss and gradients as plain autograd through the dense pre-activations, AuxK
    included (float64)."""
    from lanic_hub.transcoders.train import ensemble_loss

    torch.manual_seed(0)
    cfg = TranscoderConfig(d_in=16, d_out=12, n_members=3, n_latents=32, k=4, levels=(8, 32), aux_coef=0.5)
    m = TranscoderEnsemble(cfg).double()
    e, h = torch.randn(40, 16).double(), torch.randn(40, 12).double()
    m.init_from_data(e, h)
    with torch.no_grad():
        m.b_pre.normal_()
        m.b_enc.normal_()
    dead = torch.rand(3, 32) > 0.5
    var = (h - h.mean(0)).pow(2).sum(1).mean() * 40
    params = [m.W_enc, m.b_pre, m.b_enc, m.W_dec, m.b_dec]
    loss, _, _ = ensemble_loss(m, e, h, var, dead)
    got = torch.autograd.grad(loss, params)

    pre = m.preacts(e)  # the dense reference: autograd through every pre-activation
    values, indices = pre.topk(cfg.k, dim=-1, sorted=False)
    ref = dense_loss(m, values, indices, pre, h, var, dead, cfg.aux_coef)
    want = torch.autograd.grad(ref, params)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-12, rtol=1e-10)


def test_member_chunked_gradients_equal_the_whole_ensembles():
    """ensemble_grads in chunks of 1, 2 or all members writes the gradient of ensemble_loss."""
    from lanic_hub.transcoders.train import ensemble_grads, ensemble_loss

    torch.manual_seed(1)
    cfg = TranscoderConfig(d_in=16, d_out=12, n_members=5, n_latents=32, k=4, levels=(8, 32), aux_coef=0.5)
    m = TranscoderEnsemble(cfg).double()
    e, h = torch.randn(40, 16).double(), torch.randn(40, 12).double()
    m.init_from_data(e, h)
    dead = torch.rand(5, 32) > 0.5
    dead[2] = False  # a member without dead latents: its chunk skips AuxK (zero gradient anyway)
    var = (h - h.mean(0)).pow(2).sum(1).mean() * 40
    loss, fvu, fired = ensemble_loss(m, e, h, var, dead)
    want = torch.autograd.grad(loss, list(m.parameters()))
    for chunk in (1, 2, 5):
        _, fvu_c, fired_c = ensemble_grads(m, e, h, var, dead, chunk)
        assert torch.allclose(fvu_c, fvu, rtol=1e-12) and torch.equal(fired_c, fired)
        for p, w in zip(m.parameters(), want, strict=True):
            assert torch.allclose(p.grad, w, atol=1e-12, rtol=1e-10), chunk


@pytest.mark.parametrize(
    ("levels", "weights", "aux_coef"),
    [((8, 32), None, 0.5), (None, None, 0.0), ((4, 8, 32), (0.5, 2.0, 1.0), 0.25), ((32,), None, 0.5)],
)
def test_the_explicit_step_gives_autograds_loss_and_gradients(levels, weights, aux_coef):
    """topk_step (no autograd: one CSR for the bins, their gradients and the decoder's, the
    encoder's from the same entries) equals autograd through ensemble_loss in float64: the loss,
    the FVU, the fired mask and every gradient, over Matryoshka levels, level weights and AuxK."""
    from lanic_hub.transcoders.step import topk_step
    from lanic_hub.transcoders.train import ensemble_grads, ensemble_loss

    torch.manual_seed(2)
    cfg = TranscoderConfig(d_in=16, d_out=12, n_members=3, n_latents=32, k=4, levels=levels,
                           level_weights=weights, aux_coef=aux_coef, aux_k=6)  # fmt: skip
    m = TranscoderEnsemble(cfg).double()
    e, h = torch.randn(150, 16).double(), torch.randn(150, 12).double()  # > 128: AuxK takes a subset
    m.init_from_data(e, h)
    with torch.no_grad():
        m.b_pre.normal_()
        m.b_enc.normal_()
    dead = torch.rand(3, 32) > 0.5
    dead[1, :30] = False  # a member with 2 dead latents: AuxK picks some live (zero) ones too
    var = (h - h.mean(0)).pow(2).sum(1).mean() * 150
    loss, fvu, fired = ensemble_loss(m, e, h, var, dead)
    want = torch.autograd.grad(loss, list(m.parameters()))
    got_loss, got_fvu, got_fired = topk_step(m, e, h, var, dead)
    assert float(got_loss) == pytest.approx(float(loss.detach()), rel=1e-12)
    assert torch.allclose(got_fvu, fvu, rtol=1e-12) and torch.equal(got_fired, fired)
    for (name, p), w in zip(m.named_parameters(), want, strict=True):
        assert p.grad.shape == w.shape and torch.allclose(p.grad, w, atol=1e-12, rtol=1e-10), name
    for chunk in (1, 3):  # and through ensemble_grads, chunk by chunk
        ensemble_grads(m, e, h, var, dead, chunk, explicit=True)
        for (name, p), w in zip(m.named_parameters(), want, strict=True):
            assert torch.allclose(p.grad, w, atol=1e-12, rtol=1e-10), (name, chunk)


def test_the_explicit_step_is_refused_for_jumprelu():
    from lanic_hub.transcoders.train import ensemble_grads

    cfg = TranscoderConfig(d_in=8, d_out=4, n_members=2, n_latents=16, k=2, activation="jumprelu")
    m = TranscoderEnsemble(cfg)
    e, h = torch.randn(10, 8), torch.randn(10, 4)
    with pytest.raises(ConfigError, match="TopK"):
        ensemble_grads(m, e, h, torch.tensor(1.0), None, 2, explicit=True)


@pytest.mark.parametrize(("L", "k"), [(2048, 32), (256, 8), (64, 2), (16, 4), (12, 1)])
def test_blocked_topk_selects_what_torch_topk_selects(L, k):
    """The same values as torch.topk (blocks where L/s >= 8k, torch.topk itself otherwise), at
    distinct indices that hold them, also where many entries tie."""
    from lanic_hub.transcoders.ensemble import blocked_topk

    g = torch.Generator().manual_seed(L + k)
    for x in (torch.randn(40, 3, L, generator=g), torch.randint(-3, 4, (40, 3, L), generator=g).float()):
        v, i = blocked_topk(x, k)
        ref = x.topk(k, dim=-1).values
        assert torch.equal(v.sort(-1, descending=True).values, ref)
        assert torch.equal(x.gather(-1, i), v)
        assert (i.sort(-1).values.diff(dim=-1) > 0).all()  # distinct latents


def test_forward_equals_reference_where_the_blocked_topk_applies():
    cfg = replace(CFG, n_latents=64, k=2, levels=(8, 64))
    m = TranscoderEnsemble(cfg)
    _randomise(m)
    e = torch.randn(30, 8)
    ref, z = _reference(m, e)
    assert torch.allclose(m(e).recon, ref, atol=1e-5)
    assert torch.allclose(m.dense_codes(e), z, atol=1e-6)


@pytest.mark.parametrize(("T", "L", "rows"), [(100, 2048, 1310), (4, 64, 4096), (1000, 1 << 20, 1)])
def test_block_rows_keep_a_pre_activation_block_within_a_gigabyte(T, L, rows):
    # 2**28 floats (1 GB) per (rows, T*L) block: 268,435,456 // 204,800 = 1,310 at paper shape;
    # capped at 4,096 rows; never empty, even where one row passes the budget
    assert TranscoderConfig(d_in=8, d_out=8, n_latents=L, k=4, n_members=T).block_rows() == rows


def _plateau_problem():
    e, h, cfg = _toy_problem(700, n_members=3)
    return e[:600], h[:600], (e[600:], h[600:]), cfg


def test_a_plateau_schedule_ends_on_the_held_out_curve_and_resumes_exactly(tmp_path):
    """The run stops when the held-out FVU flattens, well before its maximum; the report says so;
    the LR held its peak until then; and a run cut in two ends in the very same model."""
    e, h, held, cfg = _plateau_problem()
    tc = TrainConfig(steps=3000, batch_size=100, lr=1e-2, warmup_steps=10, plateau_every=20,
                     plateau_window=3, plateau_stop_tol=0.02)  # fmt: skip
    m, rep = train_ensemble(e, h, cfg, tc, progress=False, heldout=held)
    conv = rep["convergence"]
    assert rep["ended_by"] == "plateau" and conv["converged"] and rep["steps"] < 3000
    start, end = conv["decay"]
    assert start == conv["plateau_step"] and rep["steps"] == end == start + math.ceil(0.2 * start)
    steps = [s for s, _ in conv["curve"]]
    assert steps == list(range(20, start + 1, 20))  # checked every 20 steps until the plateau
    fvu = dict(conv["curve"])
    w = steps[-4]
    assert (fvu[w] - fvu[start]) / fvu[w] < 0.02  # the criterion, by hand, at the plateau step
    assert conv["measured_on"] == "100 held-out rows"
    # the same seed and data: the same model; cut after 2 epochs and resumed: the same model
    again, _ = train_ensemble(e, h, cfg, tc, progress=False, heldout=held)
    train_ensemble(e, h, cfg, tc, progress=False, heldout=held, checkpoint_dir=tmp_path, stop_after_epochs=2)
    resumed, rep2 = train_ensemble(e, h, cfg, tc, progress=False, heldout=held, checkpoint_dir=tmp_path)
    for k, v in m.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]) and torch.equal(v, resumed.state_dict()[k]), k
    assert rep2["convergence"] == conv and rep2["ended_by"] == "plateau"
    # other held-out rows are another run: its checkpoint is not resumed
    from lanic_hub.transcoders.checkpoint import StaleCheckpointError

    with pytest.raises(StaleCheckpointError, match="another data"):
        other = (held[0] + 0.01, held[1])
        train_ensemble(e, h, cfg, tc, progress=False, heldout=other, checkpoint_dir=tmp_path)


def test_without_a_plateau_the_schedule_ends_at_its_maximum_and_needs_held_out_rows():
    e, h, held, cfg = _plateau_problem()
    tc = TrainConfig(steps=60, batch_size=100, lr=1e-2, warmup_steps=5, plateau_every=20)
    _, rep = train_ensemble(e, h, cfg, tc, progress=False, heldout=held)
    assert rep["ended_by"] == "maximum steps" and rep["steps"] == 60
    assert rep["convergence"]["decay"] == [50, 60] and rep["convergence"]["plateau_step"] is None
    with pytest.raises(ConfigError, match="held-out rows"):
        train_ensemble(e, h, cfg, tc, progress=False)
    # the cosine schedule (no plateau_every) is what it was: its report says the schedule ended it
    _, rep = train_ensemble(e, h, cfg, TrainConfig(steps=30, batch_size=100), progress=False)
    assert rep["ended_by"] == "schedule (steps)" and rep["steps"] == 30


def test_training_reads_and_leaves_the_global_random_state_alone():
    e, h, cfg = _toy_problem(256, n_members=2)
    weights = []
    for global_seed in (0, 99):
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        m, _ = train_ensemble(e, h, cfg, TrainConfig(epochs=2, batch_size=64), progress=False)
        assert torch.equal(before, torch.get_rng_state())  # the caller's random state untouched
        weights.append(m.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
