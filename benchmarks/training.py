"""Training throughput: this workflow's training step vs a plain-PyTorch loop and TransformerLens.

The same model in each implementation, measured in this run on the same batches, AdamW with the same
settings:

- ours: `inductionheads.train.train_step` on our `Transformer`, exactly what the train rule runs, with
  the exact loss (the default) and with the fused, chunked loss (`loss_chunk_tokens`);
- plain: a nanoGPT-style module (fused QKV `nn.Linear`, `scaled_dot_product_attention(is_causal=True)`,
  `F.cross_entropy` on the logits; fused AdamW on CUDA);
- TransformerLens: `HookedTransformer` with the same config (`pip install -e '.[bench]'`; small size
  only).

Each implementation runs in its own process, so that its memory is its own. On CUDA each runs under
bfloat16 autocast and `torch.compile`, as training does there, and the memory column is
`torch.cuda.max_memory_allocated` (weights, optimizer state, activations); on CPU it is the growth of
the process's peak resident memory over the steps (the optimizer state, made at the first step,
included). MFU: training FLOPs per token = 6 x (matmul parameters, the unembedding included)
+ 6 x n_layers x context x d_model (attention scores and weighted sums, forward and backward, causal
half counted), against `--peak-tflops` on CUDA (989: H100/H200 dense bfloat16) or this CPU's float32
matmul rate measured in the same run.

    python benchmarks/training.py [--threads 2] [--steps 30] [--repeats 3]          # small, CPU
    python benchmarks/training.py --device cuda --size paper-attn2 --steps 10        # a GPU node
    python benchmarks/training.py --device cuda --size paper-mlp6 --steps 10
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from inductionheads import device as devices
from inductionheads.interop import hooked_config
from inductionheads.model import Transformer, sinusoidal_positions
from inductionheads.train import make_optimizer, train_step, training_loss

BASE = {
    "name": "bench",
    "lr": 0.006,
    "weight_decay": 0.05,
    "grad_clip": 0.0,
    "output_init": "normal",
}
SIZES = {  # spec, vocabulary, fused-loss chunk
    "small": ({"family": "attention-only", "n_layers": 2, "d_model": 128, "n_heads": 4,
               "context_length": 256, "batch_size": 16}, 512, 1024),
    "paper-attn2": ({"family": "attention-only", "n_layers": 2, "d_model": 768, "n_heads": 12,
                     "context_length": 8192, "batch_size": 8}, 65536, 8192),
    "paper-mlp6": ({"family": "with-mlp", "n_layers": 6, "d_model": 768, "n_heads": 12,
                    "context_length": 8192, "batch_size": 8}, 65536, 8192),
}  # fmt: skip
EMBEDDINGS = ("W_E", "embed.weight", "embed.W_E", "pos_embed.W_pos")  # lookups, not matmuls
IMPLEMENTATIONS = ("ours, exact loss", "ours, fused loss", "plain PyTorch", "TransformerLens")


class PlainBlock(nn.Module):
    def __init__(self, d: int, n_heads: int, mlp: bool):
        super().__init__()
        self.ln, self.n_heads = nn.LayerNorm(d), n_heads
        self.qk = nn.Linear(d, 2 * d)  # queries and keys see the position vectors
        self.v = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        mlp_layers = (nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.mlp = nn.Sequential(*mlp_layers) if mlp else None

    def forward(self, x, pos):
        B, T, D = x.shape
        h = self.ln(x)
        q, k = self.qk(h + pos).split(D, dim=-1)
        v = self.v(h)
        q, k, v = (t.view(B, T, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(z.transpose(1, 2).reshape(B, T, D))
        return x + self.mlp(x) if self.mlp is not None else x


class Plain(nn.Module):
    """What one writes by hand: the same architecture in standard nn.Linear layers."""

    def __init__(self, spec, vocab):
        super().__init__()
        d, mlp = spec["d_model"], spec["family"] == "with-mlp"
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(PlainBlock(d, spec["n_heads"], mlp) for _ in range(spec["n_layers"]))
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


def make_step(name: str, spec: dict, vocab: int, chunk: int, device: torch.device):
    """(one training step on a batch, the model) for one implementation."""
    cuda = device.type == "cuda"
    precision = devices.training_precision(device)  # as the train rule: bfloat16 autocast on CUDA
    if name.startswith("ours"):
        model = Transformer(spec, vocab).to(device).train()
        opt = make_optimizer(model, spec)
        loss_of = training_loss(model, device, chunk if name == "ours, fused loss" else None)
        return lambda b: train_step(model, loss_of, opt, b, spec["lr"], spec["grad_clip"], precision), model
    if name == "plain PyTorch":
        model = Plain(spec, vocab).to(device).train()
        forward = torch.compile(model) if cuda else model
        opt = torch.optim.AdamW(
            model.parameters(), lr=spec["lr"], weight_decay=spec["weight_decay"], fused=cuda
        )
        loss_of = lambda b: plain_loss(forward, b)  # noqa: E731
    else:
        from transformer_lens import HookedTransformer, HookedTransformerConfig

        model = HookedTransformer(HookedTransformerConfig(**hooked_config(spec, vocab))).to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=spec["weight_decay"])
        loss_of = lambda b: model(b, return_type="loss")  # noqa: E731

    def step(batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = loss_of(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, model


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(name: str, args) -> dict:
    """Steps per second (best of the repeats, after two warm-up steps) and peak memory of one
    implementation, in this process."""
    device = torch.device(args.device)
    spec, vocab, chunk = size(args)
    torch.manual_seed(0)
    shape = (spec["batch_size"], spec["context_length"])
    batches = [torch.randint(0, vocab, shape) for _ in range(args.steps)]
    step, model = make_step(name, spec, vocab, chunk, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    batches = [b.to(device) for b in batches]
    before = resident_bytes()
    for batch in batches[:2]:  # warm up (compiling, on CUDA)
        step(batch)
    sync()
    best = math.inf
    for _ in range(args.repeats):
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        sync()
        best = min(best, time.perf_counter() - start)
    if device.type == "cuda":
        memory = torch.cuda.max_memory_allocated()
    else:  # ru_maxrss is in kB on Linux
        memory = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)
    matmul = sum(p.numel() for n, p in model.named_parameters() if p.ndim >= 2 and n not in EMBEDDINGS)
    return {"steps_per_s": len(batches) / best, "memory": memory, "matmul_params": matmul}


def size(args) -> tuple[dict, int, int]:
    spec, vocab, chunk = SIZES[args.size]
    spec = {**BASE, **spec}
    for key, value in (("batch_size", args.batch), ("context_length", args.context)):
        if value:
            spec[key] = value
    return spec, args.vocab or vocab, args.loss_chunk or chunk


def matmul_flops(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--size", default="small", choices=tuple(SIZES))
    parser.add_argument("--batch", type=int, help="sequences per step (default: the size's)")
    parser.add_argument("--context", type=int, help="tokens per sequence (default: the size's)")
    parser.add_argument("--vocab", type=int, help="vocabulary (default: the size's)")
    parser.add_argument("--loss-chunk", type=int, help="tokens per chunk of the fused loss")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense bfloat16 peak")
    parser.add_argument("--only", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only:
        print(json.dumps(measure(args.only, args)))
        return

    spec, vocab, chunk = size(args)
    results = {}
    for name in IMPLEMENTATIONS:
        if name == "TransformerLens" and args.size != "small":
            continue  # its attention materializes [heads, T, T] per layer: out of memory at context 8,192
        proc = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--only", name], capture_output=True, text=True
        )
        if proc.returncode:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{name}: failed ({last[:160]})")
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])

    tokens = spec["batch_size"] * spec["context_length"]
    L, T, D = spec["n_layers"], spec["context_length"], spec["d_model"]
    cuda = args.device == "cuda"
    peak = args.peak_tflops * 1e12 if cuda else matmul_flops()
    arithmetic = "bfloat16 autocast, compiled" if cuda else f"float32, {args.threads} threads"
    print(
        f"training, {args.size}: {L}-layer {spec['family']}, d_model {D}, {spec['n_heads']} heads,"
        f" context {T}, vocab {vocab}, batch {spec['batch_size']}, fused-loss chunk {chunk},"
        f" {args.device} ({arithmetic}), best of {args.repeats} x {args.steps} steps"
    )
    memory = "peak memory" if cuda else "step memory"
    print(f"{'implementation':<20} {'tokens/s':>12} {'this / plain':>13} {'MFU':>6} {memory + ' (GB)':>17}")
    plain = results.get("plain PyTorch", {}).get("steps_per_s")
    for name, r in results.items():
        rate = r["steps_per_s"] * tokens
        mfu = rate * (6 * r["matmul_params"] + 6 * L * T * D) / peak
        ratio = f"{r['steps_per_s'] / plain:.2f}x" if plain else "-"
        print(f"{name:<20} {rate:>12,.0f} {ratio:>13} {mfu:>6.0%} {r['memory'] / 1e9:>17.2f}")
    print(f"MFU against {peak / 1e12:.1f} TFLOP/s ({'--peak-tflops' if cuda else 'measured here'})")


if __name__ == "__main__":
    main()
