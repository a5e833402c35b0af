"""Head scores against hand-set patterns, hand-made circuits and naive loops."""

import numpy as np
import pytest
import torch

from inductionheads import head_classes, head_scores
from inductionheads.model import Cache, Transformer

R, N_REP = 5, 4
SEQ = 1 + R * N_REP


def position(repeat: int, offset: int) -> int:
    return 1 + repeat * R + offset


def induction_pattern() -> torch.Tensor:
    """Each query in repeats >= 2 attends only to the token after its first earlier occurrence;
    everything else attends to BOS."""
    A = torch.zeros(SEQ, SEQ)
    A[:, 0] = 1.0
    for k in range(1, N_REP):
        for j in range(R):
            q = position(k, j)
            A[q, 0] = 0.0
            A[q, position(0, j) + 1] = 1.0
    return A


def naive_prefix_matching(A: np.ndarray) -> float:
    """Loop over queries, spelled out from docs/methods.md §5."""
    per_query = []
    for k in range(1, N_REP):
        for j in range(R):
            q = position(k, j)
            per_query.append(sum(A[q, position(e, j) + 1] for e in range(k)))
    return float(np.mean(per_query))


def test_perfect_induction_pattern_scores_one():
    A = induction_pattern()[None, None]
    assert head_scores.prefix_matching(A, R, N_REP).item() == pytest.approx(1.0)


def test_previous_token_pattern_scores_zero_on_prefix_matching_and_one_on_previous_token():
    A = torch.zeros(SEQ, SEQ)
    A[0, 0] = 1.0
    for q in range(1, SEQ):
        A[q, q - 1] = 1.0
    A = A[None, None]
    assert head_scores.prefix_matching(A, R, N_REP).item() == pytest.approx(0.0)
    assert head_scores.previous_token(A).item() == pytest.approx(1.0)


def test_uniform_causal_pattern_matches_naive_loop():
    A = torch.tril(torch.ones(SEQ, SEQ))
    A = A / A.sum(-1, keepdim=True)
    expected = naive_prefix_matching(A.numpy())
    # a query at repeat k has k targets among q+1 keys: the score is the mean of k/(q+1)
    assert 0 < expected < 0.2
    assert head_scores.prefix_matching(A[None, None], R, N_REP).item() == pytest.approx(expected, rel=1e-6)


def test_random_patterns_match_naive_loop_per_head_and_batch():
    g = torch.Generator().manual_seed(0)
    A = torch.rand(3, 2, SEQ, SEQ, generator=g).tril()
    A = A / A.sum(-1, keepdim=True)
    got = head_scores.prefix_matching(A, R, N_REP)
    for h in range(2):
        expected = np.mean([naive_prefix_matching(A[b, h].numpy()) for b in range(3)])
        assert got[h].item() == pytest.approx(expected, rel=1e-5)


def naive_copying(A, x, tokens, W_V, b_V, W_O, W_U_eff, include_bos):
    """One head, one sequence, loops over queries and tokens (docs/methods.md §5)."""
    A, x, tokens = A.double(), x.double(), list(tokens.tolist())
    if not include_bos:
        A = A[:, 1:] / A[:, 1:].sum(-1, keepdim=True)
        x, tokens = x[1:], tokens[1:]
    distinct = sorted(set(tokens))
    n = len(distinct)
    o = {}
    for s in range(len(tokens)):
        logit = ((x[s] @ W_V.double() + b_V.double()) @ W_O.double()) @ W_U_eff.double()
        o[s] = torch.relu(logit)
    ratios = []
    for q in range(A.shape[0]):
        R_q = {t: sum(A[q, s] * o[s][t] for s in range(len(tokens))) for t in distinct}
        attended = sum(A[q, s] * R_q[tokens[s]] for s in range(len(tokens)))
        ratios.append(attended / sum(R_q.values()))
    return (float(np.mean(ratios)) - 1 / n) / (1 - 1 / n)


def copy_model(vocab=12, d=16, copy=True, seed=0):
    """A 1-layer, 1-head model: embeddings orthonormal, W_U = W_E^T; `copy` makes OV the identity on
    them (the head raises the logit of the token it attends to), else random."""
    spec = dict(
        family="attention-only",
        n_layers=1,
        d_model=d,
        n_heads=1,
        context_length=64,
        name="hand",
        output_init="normal",
    )
    torch.manual_seed(seed)
    m = Transformer(spec, vocab)
    with torch.no_grad():
        E = torch.linalg.qr(torch.randn(d, d))[0][:vocab]  # orthonormal rows
        E = E - E.mean(1, keepdim=True)  # LayerNorm keeps directions with zero mean over d_model
        m.W_E.copy_(E * 4)
        m.W_U.copy_(E.T)
        attn = m.blocks[0].attn
        if copy:
            attn.W_V.copy_(torch.eye(d)[None])
            attn.W_O.copy_(torch.eye(d)[None])
        attn.b_V.zero_()
    return m


def repeated_tokens(vocab=12, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.choice(np.arange(1, vocab), size=R, replace=False)
    return torch.tensor(np.concatenate([[0], np.tile(r, N_REP)]))[None]


@pytest.mark.parametrize("include_bos", [False, True])
@torch.no_grad()
def test_copying_equals_naive_loop(include_bos):
    m = copy_model(copy=False, seed=3)
    tokens = repeated_tokens()
    cache = Cache()
    m(tokens, cache=cache)
    _, queries = head_scores.prefix_matching_targets(R, N_REP)
    A = cache.layers[0].pattern[:, :, queries]
    attn = m.blocks[0].attn
    W_eff = head_scores.direct_logit_matrix(m)
    got = head_scores.copying(
        A, cache.layers[0].ln1_normalized, tokens, attn.W_V, attn.b_V, attn.W_O, W_eff, include_bos
    )
    expected = naive_copying(
        A[0, 0],
        cache.layers[0].ln1_normalized[0],
        tokens[0],
        attn.W_V[0],
        attn.b_V[0],
        attn.W_O[0],
        W_eff,
        include_bos,
    )
    assert got[0].item() == pytest.approx(expected, abs=1e-5)


def test_direct_logit_matrix_is_the_final_layernorm_direct_path():
    """With the LayerNorm scale frozen, adding c to the residual changes the logits by
    c @ W_eff / sigma, up to a constant over the vocabulary."""
    m = copy_model(copy=False, seed=1).double()
    with torch.no_grad():
        m.ln_final.weight.copy_(torch.rand(16) + 0.5)
        m.ln_final.bias.copy_(torch.rand(16))
        resid, c = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
        sigma = resid.var(unbiased=False).add(m.ln_final.eps).sqrt()

        def frozen_ln_logits(r):
            return ((r - r.mean()) / sigma * m.ln_final.weight + m.ln_final.bias) @ m.W_U

        assert torch.allclose(frozen_ln_logits(resid), m.ln_final(resid) @ m.W_U)
        delta = frozen_ln_logits(resid + c) - frozen_ln_logits(resid)
        delta = delta - delta.mean()
        predicted = c @ head_scores.direct_logit_matrix(m) / sigma
    assert torch.allclose(delta, predicted, atol=1e-10)


@torch.no_grad()
def test_copying_head_scores_high_and_random_head_near_zero():
    tokens = repeated_tokens()
    _, queries = head_scores.prefix_matching_targets(R, N_REP)
    A = induction_pattern()[queries][None, None]
    scores = {}
    for copy in (True, False):
        values = []
        for seed in range(8):
            m = copy_model(copy=copy, seed=seed)
            cache = Cache()
            m(tokens, cache=cache)
            attn = m.blocks[0].attn
            W_eff = head_scores.direct_logit_matrix(m)
            values.append(
                head_scores.copying(
                    A,
                    cache.layers[0].ln1_normalized,
                    tokens,
                    attn.W_V,
                    attn.b_V,
                    attn.W_O,
                    W_eff,
                    include_bos=False,
                ).item()
            )
        scores[copy] = np.mean(values)
    assert scores[True] > 0.8
    assert abs(scores[False]) < 0.2


def _copying_of(m: Transformer, tokens: torch.Tensor) -> float:
    """The copying score of `m`'s one head under the hand-set induction pattern."""
    _, queries = head_scores.prefix_matching_targets(R, N_REP)
    cache = Cache()
    m(tokens, cache=cache)
    attn = m.blocks[0].attn
    A = induction_pattern()[queries][None, None]
    W_eff = head_scores.direct_logit_matrix(m)
    args = (A, cache.layers[0].ln1_normalized, tokens, attn.W_V, attn.b_V, attn.W_O, W_eff)
    return head_scores.copying(*args, include_bos=False).item()


SETTINGS = {"induction_prefix_matching": 0.3, "induction_copying": 0.0, "previous_token": 0.4}


@torch.no_grad()
def test_an_induction_head_prefix_matches_and_raises_what_it_attends_to():
    """A head with the induction pattern is an induction head when its OV copies, not when it writes
    the negation (an anti-copying head) or nothing (W_O still at its zero initialisation)."""
    tokens = repeated_tokens()
    m = copy_model(copy=True)
    copying = _copying_of(m, tokens)
    m.blocks[0].attn.W_O.mul_(-1)
    anti = _copying_of(m, tokens)
    m.blocks[0].attn.W_O.zero_()
    dead = _copying_of(m, tokens)
    assert copying > 0.8 and anti < 0 and dead == 0
    prefix_matching = head_scores.prefix_matching(induction_pattern()[None, None], R, N_REP).item()
    assert prefix_matching == pytest.approx(1.0)
    got = head_classes.induction(np.full(3, prefix_matching), np.array([copying, anti, dead]), SETTINGS)
    assert got.tolist() == [True, False, False]


def test_head_classes_need_both_scores_and_label_previous_token_heads():
    """Weak copying counts (its size depends on the corpus); prefix matching below the threshold does
    not, however well the head copies."""
    pm = np.array([[[0.30, 0.29, 0.9, 0.0]]])  # [snapshot, layer, head]
    cp = np.array([[[0.01, 0.50, -0.01, 0.0]]])
    prev = np.array([[[0.0, 0.0, 0.0, 0.4]]])
    scores = {"prefix_matching": pm, "copying": cp, "previous_token": prev}
    labels = head_classes.labels(scores, SETTINGS)
    assert labels.tolist() == [["induction", "other", "other", "previous-token"]]


def _full_circuit_ratio(M: np.ndarray) -> float:
    lam = np.linalg.eigvals(M)
    return float(lam.real.sum() / np.abs(lam).sum())


def _ln_operator(ln_weight: torch.Tensor) -> np.ndarray:
    """The matrix of x -> (x - mean(x)) * w, acting on row vectors."""
    d = len(ln_weight)
    return ((np.eye(d) - 1.0 / d) * ln_weight.detach().numpy()[None, :]).astype(np.float64)


def test_ov_copying_equals_full_token_circuit_eigenvalues():
    torch.manual_seed(3)
    spec = dict(
        family="attention-only", n_layers=2, d_model=16, n_heads=2, context_length=16, output_init="normal"
    )
    m = Transformer(spec, 40)
    with torch.no_grad():
        for ln in (m.blocks[0].ln1, m.blocks[1].ln1, m.ln_final):
            ln.weight.add_(torch.rand(16))
    got = head_scores.ov_copying(m)
    E, U = m.W_E.detach().double().numpy(), m.W_U.detach().double().numpy()
    for layer, block in enumerate(m.blocks):
        for h in range(2):
            W_V, W_O = (w[h].detach().double().numpy() for w in (block.attn.W_V, block.attn.W_O))
            M = E @ _ln_operator(block.ln1.weight) @ W_V @ W_O @ _ln_operator(m.ln_final.weight) @ U
            assert got[layer, h] == pytest.approx(_full_circuit_ratio(M), abs=1e-6)


def test_ov_copying_is_one_for_a_copying_head_and_minus_one_for_its_negation():
    m = Transformer(dict(family="attention-only", n_layers=1, d_model=8, n_heads=1, context_length=16), 8)
    with torch.no_grad():
        m.W_E.copy_(torch.eye(8))
        m.W_U.copy_(torch.eye(8))
        m.blocks[0].attn.W_V.copy_(torch.eye(8)[None])
        m.blocks[0].attn.W_O.copy_(torch.eye(8)[None])
        assert head_scores.ov_copying(m)[0, 0] == pytest.approx(1.0)
        m.blocks[0].attn.W_O.mul_(-1)
        assert head_scores.ov_copying(m)[0, 0] == pytest.approx(-1.0)


def test_qk_trace_equals_full_k_composition_circuit():
    torch.manual_seed(4)
    spec = dict(
        family="attention-only", n_layers=3, d_model=16, n_heads=2, context_length=16, output_init="normal"
    )
    m = Transformer(spec, 30)
    prev = np.array([[0.9, 0.1], [0.3, 0.5], [0.2, 0.2]])
    got = head_scores.qk_trace(m, prev)
    assert np.isnan(got[0]).all()
    E = m.W_E.detach().double().numpy()

    def w(t):
        return t.detach().double().numpy()

    for layer in (1, 2):
        block = m.blocks[layer]
        key_source = sum(
            prev[lp, hp]
            * E
            @ _ln_operator(m.blocks[lp].ln1.weight)
            @ w(m.blocks[lp].attn.W_V[hp])
            @ w(m.blocks[lp].attn.W_O[hp])
            for lp in range(layer)
            for hp in range(2)
        )
        for h in range(2):
            Q = E @ _ln_operator(block.ln1.weight) @ w(block.attn.W_Q[h])
            K = key_source @ _ln_operator(block.ln1.weight) @ w(block.attn.W_K[h])
            assert got[layer, h] == pytest.approx(_full_circuit_ratio(Q @ K.T), abs=1e-6)


def test_qk_trace_is_one_for_a_hand_made_induction_circuit():
    """Layer 1 head copies its source token's embedding; the layer-2 head matches a query token to the
    key carrying the same token: M is the identity on the embedded tokens."""
    spec = dict(family="attention-only", n_layers=2, d_model=8, n_heads=1, context_length=16)
    m = Transformer(spec, 8)
    with torch.no_grad():
        m.W_E.copy_(torch.eye(8) - 1 / 8)  # already centred
        for block in m.blocks:
            for W in (block.attn.W_V, block.attn.W_O, block.attn.W_Q, block.attn.W_K):
                W.copy_(torch.eye(8)[None])
    assert head_scores.qk_trace(m, np.array([[1.0], [0.0]]))[1, 0] == pytest.approx(1.0)
