"""What benchmarks/learning_loop.py reports: the issue's targets checked against the results, a
table, and an SVG timeline of each canary (every request by the canary or the incumbent, right or
wrong, with the promotion or rollback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (section, result key, target, comparison): the targets, in its order.
TARGETS = [
    ("teaching", "facts_right_after", 0.9, ">="),
    ("teaching", "squad_drop_points", 2.0, "<="),
    ("teaching", "threshold_to_all_traffic_s", 300.0, "<="),
    ("poison", "canary_requests_first_damage_to_rollback", 50, "<="),
    ("poison", "seconds_first_damage_to_rollback", 60.0, "<="),
]
OUTCOME = {"teaching": "active", "poison": "rolled_back"}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it holds (a missing value, or the wrong outcome, does not)."""
    rows = []
    for section, key, target, op in TARGETS:
        if section not in results:
            continue
        value = results[section].get(key)
        right_outcome = results[section].get("outcome") == OUTCOME[section]
        met = value is not None and right_outcome and (value >= target if op == ">=" else value <= target)
        rows.append({"section": section, "measure": key, "value": value, "target": f"{op} {target}", "met": met})
    return rows


def print_table(results: dict[str, Any]) -> None:
    policy = results["policy"]
    print(f"\nmode: {results['mode']}; min_corrections {policy['train']['min_corrections']}; canary share {policy['canary']['share']}, "
          f"min_samples {policy['canary']['min_samples']}, min_samples_to_abort {policy['canary']['min_samples_to_abort']}; "
          f"wall {results.get('wall_s')} s\n")
    if teach := results.get("teaching"):
        print(f"teaching: {teach['facts']} facts → {teach['version']} ({teach['outcome']}), canary {teach['canary_requests']} requests "
              f"({teach['canary_answers_by_canary']} by the canary); facts right {teach['facts_right_before']:.0%} → {teach['facts_right_after']:.0%}; "
              f"SQuAD-mini contains ({teach['squad_questions']} q) {teach['squad_contains_before']:.1%} → {teach['squad_contains_after']:.1%}; "
              f"facts cited from the index: {len(teach['facts_cited_from_index'])}")
    if poison := results.get("poison"):
        print(f"poison: {poison['poisoned']} wrong corrections → {poison['version']} ({poison['outcome']}), serving after: {poison['serving_after']}; "
              f"reason: {poison['reason']!r} ({poison['actor']})")
    print("\n| target | measured | target | met |\n|---|---|---|---|")
    for row in results["targets"]:
        print(f"| {row['section']}: {row['measure']} | {row['value']} | {row['target']} | {'yes' if row['met'] else '**no**'} |")


def plot_timeline(results: dict[str, Any], path: Path) -> None:
    """One panel per canary: request time since the threshold-reaching correction on x, canary vs
    incumbent on y, green right / red wrong; the line is when the canary left (promoted or rolled back)."""
    sections = [s for s in ("teaching", "poison") if s in results and results[s].get("timeline")]
    if not sections:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(sections), 1, figsize=(9, 2.6 * len(sections)), squeeze=False)
    for ax, section in zip(axes[:, 0], sections):
        data = results[section]
        points = data["timeline"]
        ys = [1 if p["version"] == data["version"] else 0 for p in points]
        ax.scatter([p["t"] for p in points], ys, c=["tab:green" if p["right"] else "tab:red" for p in points], s=18)
        if points:
            ax.axvline(points[-1]["t"], color="black", linestyle="--", linewidth=1)
        ax.set_yticks([0, 1], ["incumbent", "canary"])
        ax.set_ylim(-0.5, 1.5)
        ax.set_title(f"{section}: canary {data['version']} → {data['outcome']}", fontsize=9)
        ax.set_xlabel("seconds since the threshold-reaching correction")
    fig.tight_layout()
    fig.savefig(path, format="svg")
    plt.close(fig)
