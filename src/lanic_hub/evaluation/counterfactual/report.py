"""The suite's leaderboard in markdown, from its results files."""

from __future__ import annotations

from ...records.results import EvalResults

SUITE = "phantom-counterfactual"


def markdown(docs: list[EvalResults]) -> str:
    """The suite's leaderboard: one row per method, then the per-factor table of each LanIC model."""
    ms = [d for d in docs if d.metrics.counterfactual is not None]
    if not ms:
        return ""
    c0 = ms[0].config
    lines = [
        f"# Leaderboard: suite `{SUITE}`",
        "",
        f"Measured on {ms[0].dataset.spec}: each case rendered with and without one factor, "
        f"everything else identical. A logit *moved* when |Δlogit| > {c0['moved_at']}; its change "
        "Σ|Δcontribution| + |Δunbanked| + |Δerror| is shared out among the explanation's items. "
        f"Factor share: on items whose ground-truth factor (best AUROC >= {c0['assign_auroc']}) is "
        "the removed one. Named hit: an item named after it is among the "
        f"{c0['top']} largest changes. A factor is judged when some finding moves in >= "
        f"{c0['eligible_at']:.0%} of its pairs; it passes with median factor share >= "
        f"{c0['target_share']} and named hit rate >= {c0['target_hit']:.0%}.",
        "",
        "| method | factors passing / judged | median factor share | named top-3 hit rate | "
        "items (named, with a factor) | naming precision (AUROC / gallery / either) | context share | "
        "moved logits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in ms:
        r = d.metrics.counterfactual
        lines.append(
            f"| {d.model.id} | {len(r['passing_factors'])} / {len(r['eligible_factors'])} | "
            f"{_f(r['median_factor_share_all'])} | {_f(r['named_top_hit_rate_all'])} | "
            f"{r['items']} ({r['named_items']}, {r['items_with_a_factor']}) | "
            f"{_f(r.get('naming', {}).get('precision'), 2)} / "
            f"{_f(r.get('naming_gallery', {}).get('precision'), 2)} / "
            f"{_f(r.get('naming_either', {}).get('precision'), 2)} | {_f(r.get('mean_context_share_all'))} | "
            f"{r['moved_logits']} |"
        )
    lines += [
        "",
        "By factor group, over the moved logits of judged factors (named share = median share of "
        "Σ|Δ| on items named after the removed factor; signed = median of Σ Δ(named) / Δlogit; hit = "
        "named item in the top 3; named mass = median share of an explanation's |contribution| mass, "
        "error left out, on named items). Artifacts: those the reports name (not collimation or the "
        "laterality marker).",
        "",
        "| method | findings share / signed / hit | devices share / signed / hit | "
        "artifacts share / signed / hit | all share / signed / hit | named mass |",
        "|---|---|---|---|---|---|",
    ]
    for key, title in (("groups", None), ("groups_visible", "visible")):
        if title:
            vis = next((d.metrics.counterfactual.get("visible_factors") for d in ms), None) or []
            lines += [
                "",
                "The same over the factors the embedding carries (probe AUROC on e >= "
                f"{c0.get('visible_at')}: {', '.join(vis)}); the others are limits of the backbone, "
                "not of the explanations.",
                "",
                "| method | findings share / signed / hit | devices share / signed / hit | "
                "artifacts share / signed / hit | all share / signed / hit | named mass |",
                "|---|---|---|---|---|---|",
            ]
        for d in ms:
            r = d.metrics.counterfactual
            gs = r.get(key) or {}
            cells = [
                f"{_f(g.get('median_named_share'))} / {_f(g.get('median_signed_named_share'))} / "
                f"{_f(g.get('named_top_hit_rate'))}"
                for g in (gs.get(k, {}) for k in ("findings", "devices", "artifacts", "all"))
            ]
            lines.append(f"| {d.model.id} | {' | '.join(cells)} | {_f(r.get('median_named_mass'))} |")
    for d in ms:
        if d.model.kind not in ("lanic", "ceiling"):
            continue
        r = d.metrics.counterfactual
        lines += [
            "",
            f"Per factor, {d.model.id} (embedding columns: how well e itself carries the factor):",
            "",
            "| factor | pairs | largest moved share (finding) | judged | median factor share | "
            "median named share | named top-3 hit | factor top-3 hit | context share | unbanked share | "
            "error share | passes | probe AUROC on e | e shift / random pair |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for f, v in r["factors"].items():
            big = max(v["effect"].items(), key=lambda kv: kv[1]["moved_share"])
            e = r["embedding"].get(f, {})
            lines.append(
                f"| {f} | {v['pairs']} | {big[1]['moved_share']:.2f} ({big[0]}) | "
                f"{'yes' if v['eligible'] else 'no'} | "
                f"{_f(v.get('median_factor_share'))} | {_f(v.get('median_named_share'))} | "
                f"{_f(v.get('named_top_hit_rate'))} | {_f(v.get('factor_top_hit_rate'))} | "
                f"{_f(v.get('mean_context_share'))} | "
                f"{_f(v.get('mean_unbanked_share'))} | {_f(v.get('mean_error_share'))} | "
                f"{'**yes**' if v['passes'] else ('no' if v['eligible'] else '-')} | "
                f"{_f(e.get('probe_auroc_on_pairs'))} | {_f(e.get('shift_vs_random_pair'))} |"
            )
    return "\n".join(lines) + "\n"


def _f(v, nd: int = 3) -> str:
    return "-" if v is None or v != v else f"{v:.{nd}f}"
