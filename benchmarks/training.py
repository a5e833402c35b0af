"""Training throughput: this workflow's training step vs a plain-PyTorch loop and TransformerLens.

The same model in three implementations, measured in this run on the same batches: a 2-layer
attention-only transformer (d_model 128, 4 heads, context 256, vocab 512, batch 16, Shortformer
positions), AdamW with the same settings.

- ours: `inductionheads.train.train_step` on our `Transformer`, exactly what the train rule runs;
- plain: a nanoGPT-style module (fused QKV `nn.Linear`, `scaled_dot_product_attention`);
- TransformerLens: `HookedTransformer` with the same config (`pip install -e '.[bench]'`).

Also the training FLOP rate as a fraction of this CPU's float32 matmul rate, measured here with the
same threads: FLOPs per token = 6 x (parameters in matmuls) + 6 x n_layers x context x d_model
(attention scores and weighted sums, forward and backward, causal half counted).

    python benchmarks/training.py [--threads 2] [--steps 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from inductionheads.interop import hooked_config
from inductionheads.model import Transformer, sinusoidal_positions
from inductionheads.train import make_optimizer, train_step

SPEC = {
    "name": "bench",
    "family": "attention-only",
    "n_layers": 2,
    "d_model": 128,
    "n_heads": 4,
    "context_length": 256,
    "batch_size": 16,
    "lr": 0.006,
    "weight_decay": 0.05,
    "grad_clip": 0.0,
}
VOCAB = 512


class PlainBlock(nn.Module):
    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.ln, self.n_heads = nn.LayerNorm(d), n_heads
        self.qk = nn.Linear(d, 2 * d)  # queries and keys see the position vectors
        self.v = nn.Linear(d, d)
        self.out = nn.Linear(d, d)

    def forward(self, x, pos):
        B, T, D = x.shape
        h = self.ln(x)
        q, k = self.qk(h + pos).split(D, dim=-1)
        v = self.v(h)
        q, k, v = (t.view(B, T, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.out(z.transpose(1, 2).reshape(B, T, D))


class Plain(nn.Module):
    """What one writes by hand: the same architecture in standard nn.Linear layers."""

    def __init__(self, spec, vocab):
        super().__init__()
        d = spec["d_model"]
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(PlainBlock(d, spec["n_heads"]) for _ in range(spec["n_layers"]))
        self.ln_final = nn.LayerNorm(d)
        self.unembed = nn.Linear(d, vocab)
        self.register_buffer("pos", sinusoidal_positions(spec["context_length"], d))

    def forward(self, tokens):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, self.pos[: tokens.shape[1]])
        return self.unembed(self.ln_final(x))


def plain_loss(model, batch):
    logits = model(batch)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def hooked_transformer():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    return HookedTransformer(HookedTransformerConfig(**hooked_config(SPEC, VOCAB)))


def steps_per_second(step, batches, repeats: int) -> float:
    step(batches[0])  # warm up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        best = min(best, time.perf_counter() - start)
    return len(batches) / best


def matmul_flops(threads: int, n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def flops_per_token(model: Transformer) -> float:
    matmul_params = sum(p.numel() for n, p in model.named_parameters() if p.ndim >= 2 and n != "W_E")
    L, T, D = SPEC["n_layers"], SPEC["context_length"], SPEC["d_model"]
    return 6 * matmul_params + 6 * L * T * D


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches = [
        torch.randint(0, VOCAB, (SPEC["batch_size"], SPEC["context_length"])) for _ in range(args.steps)
    ]
    tokens_per_step = SPEC["batch_size"] * SPEC["context_length"]

    ours = Transformer(SPEC, VOCAB).train()
    ours_opt = make_optimizer(ours, SPEC)
    rates = {
        "ours (inductionheads)": steps_per_second(
            lambda b: train_step(ours, ours, ours_opt, b, SPEC["lr"], SPEC["grad_clip"]),
            batches,
            args.repeats,
        )
    }

    plain = Plain(SPEC, VOCAB).train()
    plain_opt = torch.optim.AdamW(plain.parameters(), lr=SPEC["lr"], weight_decay=SPEC["weight_decay"])

    def plain_step(batch):
        loss = plain_loss(plain, batch)
        plain_opt.zero_grad(set_to_none=True)
        loss.backward()
        plain_opt.step()

    rates["plain PyTorch (SDPA)"] = steps_per_second(plain_step, batches, args.repeats)
    try:
        hooked = hooked_transformer().train()
    except ImportError:
        print("TransformerLens is not installed (pip install -e '.[bench]'): its row is left out")
    else:
        hooked_opt = torch.optim.AdamW(hooked.parameters(), lr=SPEC["lr"], weight_decay=SPEC["weight_decay"])

        def hooked_step(batch):
            loss = hooked(batch, return_type="loss")
            hooked_opt.zero_grad(set_to_none=True)
            loss.backward()
            hooked_opt.step()

        rates["TransformerLens HookedTransformer"] = steps_per_second(hooked_step, batches, args.repeats)

    L, D, H, T, B = (SPEC[k] for k in ("n_layers", "d_model", "n_heads", "context_length", "batch_size"))
    print(
        f"training, {L}-layer attention-only, d_model {D}, {H} heads, context {T}, vocab {VOCAB}, batch {B},"
        f" {args.threads} threads, best of {args.repeats} x {args.steps} steps"
    )
    print(f"{'implementation':<36} {'tokens/s':>10} {'ours / this':>12}")
    for name, rate in rates.items():
        print(f"{name:<36} {rate * tokens_per_step:>10,.0f} {rates['ours (inductionheads)'] / rate:>11.2f}x")
    peak = matmul_flops(args.threads)
    achieved = rates["ours (inductionheads)"] * tokens_per_step * flops_per_token(ours)
    print(
        f"\nparameters: ours {sum(p.numel() for p in ours.parameters()):,},"
        f" plain {sum(p.numel() for p in plain.parameters()):,}"
        f"\nmatmul rate (1024 x 1024 float32, {args.threads} threads): {peak / 1e9:.0f} GFLOP/s;"
        f" training: {achieved / 1e9:.0f} GFLOP/s = {achieved / peak:.0%} of it"
    )


if __name__ == "__main__":
    main()
