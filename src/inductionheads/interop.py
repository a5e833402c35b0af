"""TransformerLens interop: any snapshot of ours as a `HookedTransformer` (config and state dict),
and a series of TransformerLens checkpoints as a snapshot file our measurement rules read unchanged.

TransformerLens is an optional extra (`pip install -e '.[interop]'`). Export targets the
`HookedTransformer` API of the 2.x-3.x line, which has Shortformer positions
(`positional_embedding_type="shortformer"`); TransformerLens 4.0 removed `HookedTransformer`, and
its `TransformerBridge` does not implement Shortformer positions, so 4.x cannot hold these models.
Smeared keys have no TransformerLens counterpart: smeared-key models are not exported.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from .model import Transformer

log = logging.getLogger(__name__)
INSTALL_HINT = "pip install -e '.[interop]' (TransformerLens 2.x or 3.x, which have HookedTransformer)"


def transformer_lens():
    """The transformer_lens module, or an ImportError that says which install fixes it."""
    try:
        import transformer_lens as tl
    except ImportError as exc:
        raise ImportError(
            f"TransformerLens is not installed; it is an optional extra: {INSTALL_HINT}"
        ) from exc
    if not hasattr(tl, "HookedTransformer"):
        raise ImportError(
            "this TransformerLens has no HookedTransformer (removed in 4.0, whose bridge lacks Shortformer "
            f"positions): {INSTALL_HINT}"
        )
    return tl


def hooked_config(spec: dict[str, Any], vocab_size: int) -> dict[str, Any]:
    """`HookedTransformerConfig` arguments of one of our models."""
    if spec["family"] not in ("attention-only", "with-mlp"):
        raise ValueError(
            f"model {spec.get('name', '?')}: family {spec['family']} has no TransformerLens counterpart "
            "(TransformerLens has no smeared keys); only attention-only and with-mlp models export"
        )
    d, h = spec["d_model"], spec["n_heads"]
    return {
        "n_layers": spec["n_layers"],
        "d_model": d,
        "n_ctx": spec["context_length"],
        "d_head": d // h,
        "n_heads": h,
        "d_vocab": vocab_size,
        "d_mlp": 4 * d if spec["family"] == "with-mlp" else None,
        "attn_only": spec["family"] == "attention-only",
        "act_fn": "gelu",
        "normalization_type": "LN",
        "positional_embedding_type": "shortformer",
        "default_prepend_bos": False,
    }


# our state-dict names -> TransformerLens names; per block, "{i}" is the layer
GLOBAL_NAMES = {
    "W_E": "embed.W_E",
    "pos": "pos_embed.W_pos",
    "ln_final.weight": "ln_final.w",
    "ln_final.bias": "ln_final.b",
    "W_U": "unembed.W_U",
    "b_U": "unembed.b_U",
}
BLOCK_NAMES = {
    "ln1.weight": "ln1.w",
    "ln1.bias": "ln1.b",
    "ln2.weight": "ln2.w",
    "ln2.bias": "ln2.b",
    **{f"attn.{w}": f"attn.{w}" for w in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O")},
    **{f"mlp.{w}": f"mlp.{w}" for w in ("W_in", "b_in", "W_out", "b_out")},
}


def state_dict_names(n_layers: int) -> dict[str, str]:
    names = dict(GLOBAL_NAMES)
    for i in range(n_layers):
        names.update({f"blocks.{i}.{ours}": f"blocks.{i}.{theirs}" for ours, theirs in BLOCK_NAMES.items()})
    return names


def to_hooked_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our weights under TransformerLens names (the Shortformer position vectors as W_pos)."""
    ours = {**model.state_dict(), "pos": model.pos}
    names = state_dict_names(model.n_layers)
    return {names[k]: v.detach().clone() for k, v in ours.items() if k in names}


def to_hooked_transformer(model: Transformer):
    """The snapshot as an eval-mode `HookedTransformer` with the same weights."""
    tl = transformer_lens()
    cfg = tl.HookedTransformerConfig(**hooked_config(model.spec, model.vocab_size))
    hooked = tl.HookedTransformer(cfg)
    missing, unexpected = hooked.load_state_dict(to_hooked_state_dict(model), strict=False)
    # TransformerLens keeps its attention masks as buffers; every weight must have arrived
    missing = [k for k in missing if not k.endswith(("IGNORE", "mask"))]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    return hooked.to(next(model.parameters()).device).eval()


def export(snapshots: str | Path, out_dir: str | Path, *, indices: list[int] | None = None) -> list[Path]:
    """Write `config.json` (HookedTransformerConfig arguments) and one TransformerLens state dict per
    snapshot, `step_<step>.pt`, into `out_dir`: the layout `import_series` reads."""
    from . import h5io
    from .snapshots import SnapshotReader

    snapshots_path, out_dir = snapshots, Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with SnapshotReader(snapshots_path) as snaps:
        cfg = hooked_config(snaps.spec, snaps.vocab_size)
        (out_dir / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
        for index in indices if indices is not None else range(len(snaps)):
            path = out_dir / f"step_{int(snaps.steps[index]):08d}.pt"
            with h5io.atomic_path(path) as tmp:
                torch.save(to_hooked_state_dict(snaps.model(index)), tmp)
            written.append(path)
    log.info("exported %d snapshots of %s to %s", len(written), snapshots_path, out_dir)
    return written


def from_hooked_state_dict(state: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """A TransformerLens state dict under our names (W_pos as the stored Shortformer positions)."""
    theirs_to_ours = {theirs: ours for ours, theirs in state_dict_names(n_layers).items()}
    out, unknown = {}, []
    for name, tensor in state.items():
        if name in theirs_to_ours:
            out[theirs_to_ours[name]] = tensor
        elif not name.endswith(("IGNORE", "mask")):  # attention-mask buffers
            unknown.append(name)
    if unknown:
        raise ValueError(f"weights with no counterpart in this model family: {', '.join(sorted(unknown))}")
    return out


def check_config(cfg: dict[str, Any], expected: dict[str, Any], vocab_size: int, where: str) -> None:
    """A checkpoint series our models can represent: Shortformer positions, LayerNorm, GELU MLPs or
    none, the family and depth the config names, and the experiment's vocabulary."""
    wants = {
        "positional_embedding_type": "shortformer",
        "normalization_type": "LN",
        "attn_only": expected["family"] == "attention-only",
        "n_layers": expected["n_layers"],
        "d_vocab": vocab_size,
    }
    if not wants["attn_only"]:
        wants.update(act_fn="gelu", d_mlp=4 * cfg["d_model"])
    for key, want in wants.items():
        if cfg.get(key) != want:
            raise ValueError(
                f"{where}: {key} is {cfg.get(key)!r}, expected {want!r} (models here are pre-LayerNorm "
                "Shortformer transformers, attention-only or with GELU MLPs of width 4 d_model, on the "
                "experiment's tokenizer)"
            )


def read_series(source: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[int, Any]]]:
    """(HookedTransformerConfig arguments, [(step, state-dict loader)] by step) of a checkpoint series;
    each loader reads one checkpoint when called, so memory holds one at a time.

    source `path`: a directory of `config.json` and `step_<step>.pt` TransformerLens state dicts (what
    `export` writes). source `transformer_lens`: a TransformerLens model name with checkpoints
    (e.g. `attn-only-2l`) and the checkpoint `indices` to load, downloaded through
    `HookedTransformer.from_pretrained(name, checkpoint_index=i)`; its steps are the checkpoints'
    `checkpoint_value`.
    """
    if "path" in source:
        directory = Path(source["path"])
        config_file = directory / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(
                f"checkpoint series {directory}: no config.json (HookedTransformerConfig)"
            )
        cfg = json.loads(config_file.read_text())
        files = sorted(directory.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        if not files:
            raise FileNotFoundError(f"checkpoint series {directory}: no step_<step>.pt state dicts")
        return cfg, [(int(p.stem.split("_")[1]), lambda p=p: _load(p)) for p in files]
    tl = transformer_lens()
    name, series = source["transformer_lens"], []
    for index in source["indices"]:
        hooked = tl.HookedTransformer.from_pretrained(name, checkpoint_index=index)
        cfg, state = hooked.cfg.to_dict(), hooked.state_dict()
        series.append((int(hooked.cfg.checkpoint_value), lambda state=state: state))
    return cfg, sorted(series, key=lambda s: s[0])


def _load(path: Path) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable state dict ({exc})") from exc


def import_series(tokens: str | Path, snapshots: str | Path, settings: dict[str, Any]) -> None:
    """A snapshot file from a checkpoint series (settings: the model's `name`, `family`, `n_layers`
    and its `checkpoints` source with `tokens_per_step`), read by every measurement rule unchanged."""
    from . import h5io
    from . import snapshots as snapshot_file

    out_path = snapshots
    with h5io.open_input(tokens, "corpus") as f:
        vocab = int(f.attrs["vocab_size"])
    source = settings["checkpoints"]
    where = f"model {settings['name']} (checkpoints {source.get('path') or source.get('transformer_lens')})"
    cfg, series = read_series(source)
    check_config(cfg, settings, vocab, where)
    spec = {
        "name": settings["name"],
        "family": settings["family"],
        "n_layers": cfg["n_layers"],
        "d_model": cfg["d_model"],
        "n_heads": cfg["n_heads"],
        "context_length": cfg["n_ctx"],
        "positions": "stored",
        "checkpoints": source,
        "seed": settings.get("seed", 0),  # the run's directory name; the series fixed its own seed
    }
    if cfg.get("d_head", cfg["d_model"] // cfg["n_heads"]) * cfg["n_heads"] != cfg["d_model"]:
        raise ValueError(f"{where}: d_head x n_heads must equal d_model")
    steps = [step for step, _ in series]

    def state(index: int) -> dict[str, torch.Tensor]:
        return from_hooked_state_dict(series[index][1](), cfg["n_layers"])

    Transformer(spec, vocab).load_state_dict(state(0), strict=True)  # every weight, nothing else
    snapshot_file.write(
        out_path,
        spec,
        vocab,
        steps,
        source["tokens_per_step"],
        [],  # a checkpoint series carries no training-loss curve
        state,
        device="imported",
    )
    log.info("imported %d checkpoints of %s (steps %d-%d)", len(steps), where, steps[0], steps[-1])
