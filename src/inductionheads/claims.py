"""The paper's claims C1-C7 (methods.md §8), evaluated from the stored results into claims.json.

Every claim gets a status: `pass`, `fail`, or `not-evaluable` with the reason (the models or results
it needs are not in the experiment). A claim never passes on missing inputs. Each entry carries the
numbers behind its verdict and the thresholds it applied, all from the config's `analysis` section.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import h5io, pca, phase

log = logging.getLogger(__name__)

STATEMENTS = {
    "C1": "Each multi-layer attention-only model has a phase-change window holding most of its final "
    "ICL score.",
    "C2": "The 1-layer attention-only model has no phase change and far less in-context learning.",
    "C3": "Heads with high prefix-matching scores appear only in layers >= 2 of vanilla models, and rise "
    "inside the window.",
    "C4": "The multi-layer loss curve leaves the 1-layer curve inside the window (the bump).",
    "C5": "Smeared keys give a 1-layer model a phase change and move the 2-layer one earlier.",
    "C6": "Pattern-preserving ablation of the induction heads removes most of the final ICL score.",
    "C7": "The per-token-loss PCA trajectory turns inside the window.",
}
VANILLA = ("attention-only", "with-mlp")


@dataclass
class Model:
    name: str
    family: str
    n_layers: int
    window: dict | None
    icl: np.ndarray  # raw ICL score per snapshot
    tokens_seen: np.ndarray
    heldout_loss: np.ndarray  # mean over examples and context indices, per snapshot
    prefix_matching: np.ndarray  # [snapshot, layer, head]
    pca_scores: np.ndarray  # [snapshot, component]
    ablation: dict[str, Any] | None = field(default=None)

    @property
    def has_phase_change(self) -> bool:
        return bool(self.window and self.window["has_phase_change"])


def _claim(cid: str, status: str, numbers: dict, thresholds: dict, reason: str = "") -> dict[str, Any]:
    return {
        "id": cid,
        "statement": STATEMENTS[cid],
        "status": status,
        "reason": reason,
        "numbers": _finite(numbers),
        "thresholds": thresholds,
    }


def _finite(obj: Any) -> Any:
    """NaN and infinities as null: JSON has no NaN."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _verdict(ok: list[bool]) -> str:
    return "pass" if all(ok) else "fail"


def _window_numbers(m: Model) -> dict[str, Any]:
    w = m.window
    if w is None:
        return {"window": None, "final_icl": float(m.icl[-1])}
    return {
        "window_steps": [w["start_step"], w["end_step"]],
        "window_tokens": [w["start_tokens"], w["end_tokens"]],
        "icl_formed_in_window": round(w["icl_formed"], 4),
        "icl_formed_in_training": round(w["icl_total"], 4),
        "fraction_in_window": round(w["fraction"], 4),
        "has_phase_change": w["has_phase_change"],
        "final_icl": round(float(m.icl[-1]), 4),
    }


def c1(models: list[Model], t: dict) -> dict:
    th = {"window_fraction": t["window_fraction"], "min_icl_drop": t["min_icl_drop"]}
    multi = [m for m in models if m.family == "attention-only" and m.n_layers >= 2]
    if not multi:
        return _claim("C1", "not-evaluable", {}, th, "no attention-only model with 2 or more layers")
    numbers = {m.name: _window_numbers(m) for m in multi}
    return _claim("C1", _verdict([m.has_phase_change for m in multi]), numbers, th)


def c2(models: list[Model], t: dict) -> dict:
    th = {"far_less_ratio": t["far_less_ratio"], "min_icl_drop": t["min_icl_drop"]}
    one = [m for m in models if m.family == "attention-only" and m.n_layers == 1]
    multi = [m for m in models if m.family == "attention-only" and m.n_layers >= 2]
    if not one or not multi:
        missing = "1-layer" if not one else "multi-layer"
        return _claim("C2", "not-evaluable", {}, th, f"no {missing} attention-only model in the experiment")
    # ICL is a negative score: "far less" compares the amounts -ICL at the last snapshot
    least_multi = min(-float(m.icl[-1]) for m in multi)
    numbers = {m.name: _window_numbers(m) for m in one + multi}
    numbers["least_multi_layer_icl_amount"] = round(least_multi, 4)
    ok = [not m.has_phase_change and -float(m.icl[-1]) <= t["far_less_ratio"] * least_multi for m in one]
    return _claim("C2", _verdict(ok), numbers, th)


def c3(models: list[Model], t: dict) -> dict:
    tau = t["induction_prefix_matching"]
    th = {"induction_prefix_matching": tau, "window_fraction": t["window_fraction"]}
    vanilla = [m for m in models if m.family in VANILLA]
    multi = [m for m in vanilla if m.n_layers >= 2 and m.window is not None]
    if not multi:
        return _claim("C3", "not-evaluable", {}, th, "no vanilla multi-layer model with a window")
    numbers, ok = {}, []
    for m in vanilla:
        layer1_max = float(m.prefix_matching[:, 0].max())
        entry = {"max_layer1_prefix_matching_over_training": round(layer1_max, 4)}
        ok.append(layer1_max < tau)
        if m in multi:
            final = m.prefix_matching[-1, 1:]
            layer, head = np.unravel_index(final.argmax(), final.shape)
            curve = m.prefix_matching[:, 1 + layer, head]
            rise_total = float(curve[-1] - curve[0])
            rise_in = float(curve[m.window["end"]] - curve[m.window["start"]])
            share = rise_in / rise_total if rise_total > 0 else float("nan")
            entry.update(
                top_head=f"{layer + 2}.{head}",
                top_head_final_prefix_matching=round(float(curve[-1]), 4),
                share_of_rise_inside_window=round(share, 4),
            )
            ok += [float(curve[-1]) >= tau, share >= t["window_fraction"]]
        numbers[m.name] = entry
    return _claim("C3", _verdict(ok), numbers, th)


def c4(models: list[Model], t: dict) -> dict:
    th = {"bump_rate_ratio": t["bump_rate_ratio"], "transient_fraction": t["transient_fraction"]}
    refs = [m for m in models if m.family == "attention-only" and m.n_layers == 1]
    multi = [m for m in models if m.family in VANILLA and m.n_layers >= 2 and m.has_phase_change]
    if not refs or not multi:
        what = "1-layer attention-only model" if not refs else "vanilla multi-layer model with a phase change"
        return _claim("C4", "not-evaluable", {}, th, f"no {what} in the experiment")
    ref = refs[0]
    numbers, ok = {"reference": ref.name}, []
    for m in multi:
        x = m.tokens_seen.astype(np.float64)
        inside_grid = x <= ref.tokens_seen[-1]
        gap = np.interp(x, ref.tokens_seen, ref.heldout_loss) - m.heldout_loss
        s, e = m.window["start"], m.window["end"]
        rate_in = (gap[e] - gap[s]) / (x[e] - x[s]) if x[e] > x[s] else float("nan")
        # outside the window, after the early transient where every model's loss falls fast
        first = x[-1] * t["transient_fraction"]
        steps = [
            (gap[i + 1] - gap[i], x[i + 1] - x[i])
            for i in range(len(x) - 1)
            if x[i] >= first and not (s <= i < e) and inside_grid[i + 1]
        ]
        dx = sum(d for _, d in steps)
        rate_out = sum(g for g, _ in steps) / dx if dx > 0 else 0.0
        ok.append(bool(rate_in > 0 and rate_in >= t["bump_rate_ratio"] * max(rate_out, 0.0)))
        numbers[m.name] = {
            "gap_growth_per_million_tokens_inside": round(1e6 * rate_in, 5),
            "gap_growth_per_million_tokens_outside": round(1e6 * rate_out, 5),
            "loss_gap_at_window": [round(float(gap[s]), 4), round(float(gap[e]), 4)],
        }
    return _claim("C4", _verdict(ok), numbers, th)


def c5(models: list[Model], t: dict) -> dict:
    th = {"window_fraction": t["window_fraction"], "min_icl_drop": t["min_icl_drop"]}
    s1 = [m for m in models if m.family == "smeared-key" and m.n_layers == 1]
    s2 = [m for m in models if m.family == "smeared-key" and m.n_layers == 2]
    v2 = [m for m in models if m.family == "attention-only" and m.n_layers == 2]
    if not s1 or not s2 or not v2:
        need = [
            n
            for n, ms in [
                ("1-layer smeared-key", s1),
                ("2-layer smeared-key", s2),
                ("2-layer attention-only", v2),
            ]
            if not ms
        ]
        return _claim("C5", "not-evaluable", {}, th, f"no {', no '.join(need)} model in the experiment")
    numbers = {m.name: _window_numbers(m) for m in s1 + s2 + v2}
    if not all(m.has_phase_change for m in v2):
        return _claim(
            "C5",
            "not-evaluable",
            numbers,
            th,
            "the 2-layer attention-only model has no phase change to compare with",
        )
    ok = [m.has_phase_change for m in s1]
    for smeared in s2:
        for vanilla in v2:
            ok.append(
                smeared.has_phase_change and smeared.window["start_tokens"] < vanilla.window["start_tokens"]
            )
    return _claim("C5", _verdict(ok), numbers, th)


def c6(models: list[Model], t: dict) -> dict:
    th = {"ablation_fraction": t["window_fraction"]}
    with_ablation = [m for m in models if m.ablation is not None]
    if not with_ablation:
        return _claim("C6", "not-evaluable", {}, th, "the experiment has no ablation results")
    numbers, ok = {}, []
    for m in with_ablation:
        numbers[m.name] = m.ablation
        if m.ablation.get("induction_heads"):
            ok.append(m.ablation["fraction_removed"] >= t["window_fraction"])
    if not ok:
        return _claim("C6", "not-evaluable", numbers, th, "no model has induction heads to ablate")
    return _claim("C6", _verdict(ok), numbers, th)


def c7(models: list[Model], t: dict) -> dict:
    th = {"min_turn_degrees": t["min_turn_degrees"]}
    changed = [m for m in models if m.has_phase_change]
    if not changed:
        return _claim("C7", "not-evaluable", {}, th, "no model has a phase change")
    numbers, ok = {}, []
    for m in models:
        if m.window is None:
            continue
        angle = pca.turn_degrees(m.pca_scores[:, :2], m.window["start"], m.window["end"])
        numbers[m.name] = {"turn_degrees": round(angle, 1), "has_phase_change": m.has_phase_change}
        # NaN: the window starts so early that training has no direction before it to turn from
        if m.has_phase_change and not np.isnan(angle):
            ok.append(bool(angle >= t["min_turn_degrees"]))
    if not ok:
        reason = "no phase change has as many snapshots before its window as inside it"
        return _claim("C7", "not-evaluable", numbers, th, reason)
    return _claim("C7", _verdict(ok), numbers, th)


CLAIMS = (c1, c2, c3, c4, c5, c6, c7)


def evaluate(models: list[Model], thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    return [claim(models, thresholds) for claim in CLAIMS]


def load_models(
    specs: list[dict[str, Any]],
    losses: list[str],
    heads: list[str],
    phases: list[str],
    ablations: list[str],
    pca_path: str,
) -> list[Model]:
    """One Model per entry of `specs` (name, family, n_layers), from files given in the same order."""
    projected = pca.read(pca_path)
    models = []
    for i, spec in enumerate(specs):
        name = spec["name"]
        with h5io.open_input(losses[i], "losses") as f:
            icl, tokens = h5io.read(f, "icl_score"), h5io.read(f, "tokens_seen")
            heldout = h5io.read(f, "mean_loss").mean(1)
            found = str(f.attrs["model"])
        with h5io.open_input(heads[i], "heads") as f:
            prefix = h5io.read(f, "prefix_matching")
        if found != name or name not in projected:
            raise ValueError(f"{losses[i]} holds model '{found}', expected '{name}' (files out of order?)")
        window = phase.read(phases[i])["window"]
        models.append(
            Model(
                name,
                spec["family"],
                spec["n_layers"],
                window,
                icl,
                tokens,
                heldout,
                prefix,
                projected[name]["scores"],
                ablation_summary(ablations[i]),
            )
        )
    return models


def ablation_summary(path: str | Path) -> dict[str, Any]:
    """What claim C6 reads: the induction heads, the clean final ICL score and the share of it that
    pattern-preserving ablation of all induction heads together removes."""
    with h5io.open_input(path, "ablation") as f:
        inductive = h5io.read(f, "induction_heads").astype(bool)
        clean = float(h5io.read(f, "clean_icl_score")[-1])
        joint = json.loads(f.attrs["induction_heads_joint_delta_icl"])
        step = int(h5io.read(f, "steps")[-1])
    heads = [f"{layer + 1}.{head}" for layer, head in zip(*np.nonzero(inductive), strict=True)]
    out: dict[str, Any] = {"step": step, "induction_heads": heads, "clean_icl": round(clean, 4)}
    if heads:
        removed = joint["pattern_preserving"]
        out["delta_icl_pattern_preserving"] = round(removed, 4)
        out["delta_icl_full"] = round(joint["full"], 4)
        out["fraction_removed"] = round(removed / -clean, 4) if clean < 0 else float("nan")
    return out


def run(
    settings: dict[str, Any],
    losses: list[str],
    heads: list[str],
    phases: list[str],
    ablations: list[str],
    pca_path: str,
    out_path: str | Path,
) -> None:
    models = load_models(settings["models"], losses, heads, phases, ablations, pca_path)
    results = evaluate(models, settings["thresholds"])
    for c in results:
        log.info("%s %s %s", c["id"], c["status"], c["reason"])
    out = Path(out_path)
    tmp = out.with_name(out.name + ".tmp")
    document = {"claims": results, "thresholds": settings["thresholds"]}
    tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    tmp.replace(out)
