"""The paper's claims C1-C7 (docs/methods.md §8), evaluated from the stored results into claims.json.

Every claim is evaluated in every replicate (the r-th run of every model) and gets a status there:
`pass`, `fail`, or `not-evaluable` with the reason (the models or results it needs are not in the
experiment). A claim never passes on missing inputs. Each entry carries the numbers behind its verdict
and the thresholds it applied, all from the config's `analysis` section. Over replicates, claims.json
gives each claim's pass count and each model's phase-change window as mean, s.d. and range.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import h5io, pca, phase, readers

log = logging.getLogger(__name__)

STATEMENTS = {
    "C1": "Each multi-layer attention-only model has a phase-change window holding most of its final "
    "ICL score.",
    "C2": "The 1-layer attention-only model has no phase change and far less in-context learning.",
    "C3": "Heads with high prefix-matching scores appear only in layers >= 2 of vanilla models, and rise "
    "inside the window.",
    "C4": "The multi-layer loss curve leaves the 1-layer curve inside the window (the bump): the gap "
    "between them opens fastest there.",
    "C5": "Smeared keys give a 1-layer model a phase change and move the 2-layer one earlier.",
    "C6": "Pattern-preserving ablation of the induction heads removes most of the final ICL score.",
    "C7": "The per-token-loss PCA trajectory of a multi-layer model turns inside the window, off its own "
    "earlier course further than the 1-layer model moves off its own over the same tokens, and off the "
    "course it shared with the 1-layer model: most of the separation between the two trajectories forms "
    "there.",
}
VANILLA = ("attention-only", "with-mlp")


@dataclass
class RunEvidence:
    """One run's stored measurements as the claims weigh them (load_models)."""

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
    seed: int = 0
    final_level: float | None = None  # the smoothed ICL score at the end of training (phase.smooth)
    # tokens seen when the learning-rate warmup ends: the early transient, where every loss falls fast
    # and every trajectory moves alike, which C4 and C7 leave out
    warmup_tokens: float = 0.0

    @property
    def final_icl(self) -> float:
        """The ICL score at the end of training: the smoothed level when known, else the last value."""
        return float(self.icl[-1]) if self.final_level is None else self.final_level

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


def _window_numbers(m: RunEvidence) -> dict[str, Any]:
    w = m.window
    if w is None:
        return {"window": None, "final_icl": round(m.final_icl, 4)}
    return {
        "window_steps": [w["start_step"], w["end_step"]],
        "window_tokens": [w["start_tokens"], w["end_tokens"]],
        "icl_formed_in_window": round(w["icl_formed"], 4),
        "icl_formed_in_training": round(w["icl_total"], 4),
        "fraction_in_window": round(w["fraction"], 4),
        "training_after_window": round(w["after"], 4),
        "status": w["status"],
        "has_phase_change": w["has_phase_change"],
        "final_icl": round(m.final_icl, 4),
    }


def c1(models: list[RunEvidence], t: dict) -> dict:
    th = {"window_fraction": t["window_fraction"], "min_icl_drop": t["min_icl_drop"]}
    multi = [m for m in models if m.family == "attention-only" and m.n_layers >= 2]
    if not multi:
        return _claim("C1", "not-evaluable", {}, th, "no attention-only model with 2 or more layers")
    numbers = {m.name: _window_numbers(m) for m in multi}
    return _claim("C1", _verdict([m.has_phase_change for m in multi]), numbers, th)


def c2(models: list[RunEvidence], t: dict) -> dict:
    th = {"far_less_ratio": t["far_less_ratio"], "min_icl_drop": t["min_icl_drop"]}
    one = [m for m in models if m.family == "attention-only" and m.n_layers == 1]
    multi = [m for m in models if m.family == "attention-only" and m.n_layers >= 2]
    if not one or not multi:
        missing = "1-layer" if not one else "multi-layer"
        return _claim("C2", "not-evaluable", {}, th, f"no {missing} attention-only model in the experiment")
    # ICL is a negative score: "far less" compares the amounts -ICL at the end of training
    least_multi = min(-m.final_icl for m in multi)
    numbers = {m.name: _window_numbers(m) for m in one + multi}
    numbers["least_multi_layer_icl_amount"] = round(least_multi, 4)
    ok = [not m.has_phase_change and -m.final_icl <= t["far_less_ratio"] * least_multi for m in one]
    return _claim("C2", _verdict(ok), numbers, th)


def c3(models: list[RunEvidence], t: dict) -> dict:
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


def _against_one_layer(models: list[RunEvidence]) -> tuple[RunEvidence | None, list[RunEvidence], str]:
    """(the 1-layer attention-only control, the vanilla multi-layer models with a phase change, why the
    comparison cannot be made or ""): C4 and C7 compare each such model with the control."""
    refs = [m for m in models if m.family == "attention-only" and m.n_layers == 1]
    changed = [m for m in models if m.family in VANILLA and m.n_layers >= 2 and m.has_phase_change]
    if not refs or not changed:
        what = "1-layer attention-only model" if not refs else "vanilla multi-layer model with a phase change"
        return None, changed, f"no {what} in the experiment"
    return refs[0], changed, ""


def c4(models: list[RunEvidence], t: dict) -> dict:
    """The bump: the multi-layer and 1-layer loss curves part inside the window. The gap (1-layer held-out
    loss, interpolated on tokens seen, minus the model's) is smoothed over `icl_smoothing` snapshots;
    its fastest growth inside the window must be at least `bump_rate_ratio` times its typical (median)
    growth over the rest of training after the warmup, before the window and after it: the gap opens
    fastest there. (The time before a window can be short: the phase change may start soon after the
    warmup.)"""
    th = {"bump_rate_ratio": t["bump_rate_ratio"], "icl_smoothing": t["icl_smoothing"]}
    ref, multi, missing = _against_one_layer(models)
    if missing:
        return _claim("C4", "not-evaluable", {}, th, missing)
    numbers, ok = {"reference": ref.name}, []
    for m in multi:
        x = m.tokens_seen.astype(np.float64)
        covered = x <= ref.tokens_seen[-1]  # where the 1-layer curve exists
        gap = np.interp(x, ref.tokens_seen, ref.heldout_loss) - m.heldout_loss
        grid, rate = phase.even_slope(phase.smooth(gap[covered], t["icl_smoothing"]), x[covered])
        s, e = m.window["start"], m.window["end"]
        inside = (grid >= x[s]) & (grid <= x[e])
        outside = (grid >= max(m.warmup_tokens, ref.warmup_tokens)) & ~inside
        entry = {"loss_gap_at_window": [round(float(gap[s]), 4), round(float(gap[e]), 4)]}
        if not inside.any() or outside.sum() < 2:
            entry["note"] = "the 1-layer curve does not cover the window and enough of training around it"
            numbers[m.name] = entry
            continue
        peak, typical = float(rate[inside].max()), float(np.median(rate[outside]))
        entry.update(
            peak_gap_growth_per_million_tokens_inside=round(1e6 * peak, 5),
            typical_gap_growth_per_million_tokens_outside=round(1e6 * typical, 5),
        )
        numbers[m.name] = entry
        ok.append(bool(peak > 0 and peak >= t["bump_rate_ratio"] * max(typical, 0.0)))
    if not ok:
        reason = "no multi-layer model has a 1-layer curve covering its window and training around it"
        return _claim("C4", "not-evaluable", numbers, th, reason)
    return _claim("C4", _verdict(ok), numbers, th)


def c5(models: list[RunEvidence], t: dict) -> dict:
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


def c6(models: list[RunEvidence], t: dict) -> dict:
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


def c7(models: list[RunEvidence], t: dict) -> dict:
    """In every vanilla multi-layer model with a phase change, the per-token-loss trajectory (the joint PCA
    of `n_components` components) turns inside the window, where the 1-layer model of the same replicate,
    trained alike without a phase change, does not:

    - off its own earlier course further than the 1-layer model moves off its own over the same tokens:
      the distance moved inside the window across the direction of as long a stretch before it (not
      reaching back into the warmup, where every trajectory falls alike), |start -> end| sin(angle);
    - off the course it shared with the 1-layer model: the distance between the two trajectories at equal
      tokens grows by at least `window_fraction` of its growth from the end of the warmup to the end of
      the 1-layer model's training inside the window, and ends at least `bump_rate_ratio` times what it
      was then.

    A turn alone is no evidence: how far a trajectory bends over a stretch depends on the corpus and on
    the components kept, so it is measured against the control's over the same tokens, not against a
    fixed number of degrees; and where a trajectory barely moves, noise points it anywhere, so the turn
    is a distance, not an angle (a control that moves a twentieth as far can turn by as many degrees).
    Moving away from the 1-layer model inside the window is what noise rarely does."""
    th = {"window_fraction": t["window_fraction"], "bump_rate_ratio": t["bump_rate_ratio"]}
    ref, changed, missing = _against_one_layer(models)
    if missing:
        return _claim("C7", "not-evaluable", {}, th, missing)
    numbers, ok = {"reference": ref.name}, []
    for m in changed:
        start, end = float(m.tokens_seen[m.window["start"]]), float(m.tokens_seen[m.window["end"]])
        warm = max(m.warmup_tokens, ref.warmup_tokens, float(m.tokens_seen[0]))
        last = min(float(m.tokens_seen[-1]), float(ref.tokens_seen[-1]))
        if not warm < start < end <= last:
            why = f"{ref.name} does not span the window" if end > last else "the window starts in the warmup"
            numbers[m.name] = {"note": why}
            continue
        before = max(start - (end - start), warm)
        at = dict(
            zip(("warm", "before", "start", "end", "last"), (warm, before, start, end, last), strict=True)
        )
        own = dict(zip(at, pca.at_tokens(m.pca_scores, m.tokens_seen, list(at.values())), strict=True))
        control = dict(
            zip(at, pca.at_tokens(ref.pca_scores, ref.tokens_seen, list(at.values())), strict=True)
        )
        apart = {k: float(np.linalg.norm(own[k] - control[k])) for k in at}
        degrees, off_course = pca.turn(own["before"], own["start"], own["end"])
        # the control's turn over the same tokens (0 where it stood still): how far trajectories bend
        # here on this corpus without a phase change
        control_degrees, control_off_course = pca.turn(control["before"], control["start"], control["end"])
        control_degrees = float(np.nan_to_num(control_degrees))
        separation = apart["last"] - apart["warm"]
        share = (apart["end"] - apart["start"]) / separation if separation > 0 else float("nan")
        growth = apart["last"] / apart["warm"] if apart["warm"] > 0 else float("inf")
        numbers[m.name] = {
            "turn_degrees": round(degrees, 1),
            f"turn_degrees_of_{ref.name}": round(control_degrees, 1),
            "off_course": round(off_course, 3),
            f"off_course_of_{ref.name}": round(control_off_course, 3),
            f"distance_to_{ref.name}": {k: round(v, 3) for k, v in apart.items()},
            "share_of_separation_inside_window": round(share, 4),
            "separation_growth_since_warmup": round(growth, 2),
        }
        ok.append(
            bool(
                off_course > control_off_course
                and share >= t["window_fraction"]
                and growth >= t["bump_rate_ratio"]
            )
        )
    if not ok:
        reason = f"no window lies after the warmup and within {ref.name}'s training"
        return _claim("C7", "not-evaluable", numbers, th, reason)
    return _claim("C7", _verdict(ok), numbers, th)


CLAIMS = (c1, c2, c3, c4, c5, c6, c7)


def evaluate(models: list[RunEvidence], thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    """Every claim on one replicate's models."""
    return [claim(models, thresholds) for claim in CLAIMS]


def load_models(
    runs: list[dict[str, Any]],
    losses: list[str],
    head_scores: list[str],
    phases: list[str],
    ablations: list[str],
    pcas: list[str],
) -> dict[int, list[RunEvidence]]:
    """{replicate: [RunEvidence, ...]} from `runs` (replicate, seed, name, family, n_layers,
    warmup_tokens) and their files in the same order; `pcas` holds one joint-PCA file per replicate,
    in replicate order."""
    replicates = sorted({run["replicate"] for run in runs})
    if len(pcas) != len(replicates):
        raise ValueError(f"{len(pcas)} PCA files for {len(replicates)} replicates")
    projected = {r: pca.read(path) for r, path in zip(replicates, pcas, strict=True)}
    out: dict[int, list[RunEvidence]] = {r: [] for r in replicates}
    for i, run in enumerate(runs):
        name, seed = run["name"], run["seed"]
        measured = readers.losses(losses[i])
        icl, tokens = measured.icl_score, measured.tokens_seen
        heldout = measured.mean_loss.mean(1)
        if (measured.model, measured.seed) != (name, seed) or name not in projected[run["replicate"]]:
            raise ValueError(
                f"{losses[i]} holds model {measured.model} seed {measured.seed}, expected {name} seed "
                f"{seed} (files out of order?)"
            )
        prefix = readers.head_scores(head_scores[i]).scores["prefix_matching"]
        read = phase.read(phases[i])
        out[run["replicate"]].append(
            RunEvidence(
                name,
                run["family"],
                run["n_layers"],
                read["window"],
                icl,
                tokens,
                heldout,
                prefix,
                projected[run["replicate"]][name]["scores"],
                ablation_summary(ablations[i]),
                seed=seed,
                final_level=float(read["icl_lasting"][-1]),
                warmup_tokens=float(run["warmup_tokens"]),
            )
        )
    return out


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    v = np.asarray(values, np.float64)
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return {"mean": float(v.mean()), "sd": sd, "min": float(v.min()), "max": float(v.max())}


def windows_over_replicates(by_replicate: dict[int, list[RunEvidence]]) -> dict[str, Any]:
    """Per model: each replicate's window status, and the start and end of the phase-change windows
    (steps and tokens) as mean, s.d. and range over the replicates that have one."""
    runs: dict[str, list[RunEvidence]] = {}
    for models in by_replicate.values():
        for m in models:
            runs.setdefault(m.name, []).append(m)
    out = {}
    for name, ms in runs.items():
        changed = [m.window for m in ms if m.has_phase_change]
        out[name] = {
            "replicates": len(ms),
            "phase_change_in": len(changed),
            "status_by_seed": {str(m.seed): m.window["status"] if m.window else "no window" for m in ms},
            **{key: _spread([w[key] for w in changed]) for key in WINDOW_KEYS},
            "fraction_in_window": _spread([w["fraction"] for w in changed]),
        }
    return out


WINDOW_KEYS = ("start_step", "end_step", "start_tokens", "end_tokens")


def summarize(by_replicate: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per claim over replicates: pass / fail / not-evaluable counts and an overall status: pass when
    it passes in every replicate, not-evaluable when it is evaluable in none, fail otherwise."""
    out = []
    for i, cid in enumerate(STATEMENTS):
        statuses = [claims[i]["status"] for claims in by_replicate.values()]
        counts = {k: statuses.count(k) for k in ("pass", "fail", "not-evaluable")}
        if counts["pass"] == len(statuses):
            status = "pass"
        elif counts["not-evaluable"] == len(statuses):
            status = "not-evaluable"
        else:
            status = "fail"
        out.append(
            {
                "id": cid,
                "statement": STATEMENTS[cid],
                "status": status,
                "passed": counts["pass"],
                "failed": counts["fail"],
                "not_evaluable": counts["not-evaluable"],
                "replicates": len(statuses),
            }
        )
    return out


def ablation_summary(path: str | Path) -> dict[str, Any]:
    """What claim C6 reads: the induction heads, the clean final ICL score and the share of it that
    pattern-preserving ablation of all induction heads together removes."""
    result = readers.ablation(path)
    inductive, joint = result.induction_heads, result.joint_delta_icl
    clean, step = float(result.clean_icl_score[-1]), int(result.steps[-1])
    heads = [f"{layer + 1}.{head}" for layer, head in zip(*np.nonzero(inductive), strict=True)]
    out: dict[str, Any] = {"step": step, "induction_heads": heads, "clean_icl": round(clean, 4)}
    if heads:
        removed = joint["pattern_preserving"]
        out["delta_icl_pattern_preserving"] = round(removed, 4)
        out["delta_icl_full"] = round(joint["full"], 4)
        out["fraction_removed"] = round(removed / -clean, 4) if clean < 0 else float("nan")
    return out


def run(
    losses: list[str],
    head_scores: list[str],
    phase: list[str],
    ablation: list[str],
    pca: list[str],
    claims: str | Path,
    settings: dict[str, Any],
) -> None:
    """claims.json from every run's files (in the order of settings["runs"]) and one joint-PCA file
    per replicate, in replicate order."""
    models = load_models(settings["runs"], losses, head_scores, phase, ablation, pca)
    by_replicate = {r: evaluate(ms, settings["thresholds"]) for r, ms in models.items()}
    summary = summarize(by_replicate)
    for c in summary:
        log.info("%s %s: passed in %d of %d replicates", c["id"], c["status"], c["passed"], c["replicates"])
    document = {
        "replicates": len(by_replicate),
        "summary": summary,
        "windows": _finite(windows_over_replicates(models)),
        "by_replicate": [
            {
                "replicate": r,
                "seeds": {m.name: m.seed for m in models[r]},
                "passed": sum(c["status"] == "pass" for c in claims),
                "claims": claims,
            }
            for r, claims in by_replicate.items()
        ],
        "thresholds": settings["thresholds"],
    }
    with h5io.atomic_path(claims) as tmp:
        tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
