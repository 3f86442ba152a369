"""Collects bench/results/*.json into one table (results.md), one JSON and one chart (PNG)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from bench import RESULTS, write_json
from bench.images import cold_start_target


def _load(name: str):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}"


def table(results: dict) -> str:
    rows = [f"Machine: {results['machine']}", "", "| measure | value | target |", "|---|---|---|"]
    peer = results.get("tfx_peer")
    for p in (peer or {}).get("pipelines", []):
        if p["ratio_min"] is None:
            rows.append(
                f"| {p['pipeline']} end to end vs TFX 1.16 | no pair blessed and pushed | |"
            )
            continue
        rows.append(
            f"| {p['pipeline']} end to end vs TFX 1.16 (same module file, {p['train_steps']} "
            f"steps; {p['pairs_complete']} alternating pairs, medians {p['tfkfp_median_s']:.1f} s "
            f"vs {p['tfx_median_s']:.1f} s) | {p['ratio_min']:.2f}× min, "
            f"{p['ratio_median']:.2f}× median | ≤ {peer['targets']['min']}× min, "
            f"≤ {peer['targets']['median']}× median |"
        )
    for e2e in results.get("e2e") or []:
        rows.append(
            f"| {e2e['pipeline']} end to end (kfp.local) | {e2e['seconds']:.1f} s | "
            f"{'≤ 60 s' if e2e['pipeline'] == 'taxi' else '≤ 45 s'} |"
        )
        for s in e2e["stages"]:
            rows.append(
                f"| · {s['stage']} | {s['seconds']:.1f} s (start+imports "
                f"{s['start_and_imports']:.1f}, exit {s['exit']:.1f}) | |"
            )
        rows.append(f"| · share in start, imports, exit | {e2e['start_import_exit_share']:.0%} | |")
    for w in results.get("warm") or []:
        rows.append(
            f"| {w['pipeline']} end to end vs one warm process calling the stages | "
            f"{w['ratio_median']:.2f}× median, {w['ratio_min']:.2f}× min | ≤ {w['target']}× |"
        )
    scale = results.get("scale")
    if scale:
        for stage in ("transform", "evaluator"):
            for e in scale[stage]:
                rows.append(
                    f"| {stage} {e['rows']:,} rows: overhead vs direct | "
                    f"{e['overhead']:.3f}× ({e['rows_per_s']:,} rows/s) | ≤ 1.10× |"
                )
            for e in scale[stage]:
                if "verify_share" in e:
                    rows.append(
                        f"| {stage} {e['rows']:,} rows: examples manifest check | "
                        f"{e['verify_s'] * 1000:.1f} ms, {e['verify_share']:.3%} of the stage | ≤ 3% |"
                    )
            lin = scale[f"{stage}_linearity"]
            rows.append(
                f"| {stage} marginal cost per row between sizes "
                f"({' / '.join(f'{x:.0f}' for x in lin['marginal_us_per_row'])} µs) | "
                f"spread {lin['spread']:.2f}× | ≤ 1.20× |"
            )
        mp = scale["beam_multi_process"]
        rows.append(
            f"| transform {mp['rows']:,} rows: all cores vs 1 worker | {mp['speedup']:.2f}× | |"
        )
    for run in (results.get("big") or {}).get("runs", []):
        cores = "1 core" if run["cores"] == 1 else "all cores"
        rows.append(
            f"| {run['stage']} {run['rows']:,} rows, {cores}: wall, cores used, peak RSS "
            f"| {run['wall_s']:.1f} s, {run['cores_used']:.2f}, {run['peak_rss_gb']:.2f} GB | |"
        )
    apply = results.get("transform_apply")
    if apply:
        for run in apply["runs"]:
            cores = "1 core" if run["cores"] == 1 else "all cores"
            side = "apply outside Beam" if run["side"] == "after" else f"before ({apply['before']})"
            rows.append(
                f"| transform {apply['rows']:,} rows, {side}, {cores}: wall, cores used, peak RSS "
                f"| {run['wall_s']:.1f} s, {run['cores_used']:.2f}, {run['peak_rss_gb']:.2f} GB "
                f"| |"
            )
        ratios = apply.get("ratios")
        if ratios:
            load = f"load average {apply['load_average_start'][0]:.1f} → " + (
                f"{apply['load_average_end'][0]:.1f}" if apply.get("load_average_end") else "?"
            )
            rows.append(
                f"| transform {apply['rows']:,} rows, apply outside Beam vs before, 1 core / all "
                f"cores ({load}): wall | {ratios['after_vs_before_wall_1_core']:.2f}× / "
                f"{ratios['after_vs_before_wall_all_cores']:.2f}× | |"
            )
            if "after_vs_before_cpu_1_core" in ratios:
                rows.append(
                    f"| transform {apply['rows']:,} rows, apply outside Beam vs before, 1 core / "
                    f"all cores: CPU seconds | {ratios['after_vs_before_cpu_1_core']:.2f}× / "
                    f"{ratios['after_vs_before_cpu_all_cores']:.2f}× | |"
                )
                rows.append(
                    f"| transform {apply['rows']:,} rows, apply outside Beam vs before, 1 core / "
                    f"all cores: peak RSS | {ratios['after_vs_before_peak_rss_1_core']:.2f}× / "
                    f"{ratios['after_vs_before_peak_rss_all_cores']:.2f}× | |"
                )
            rows.append(
                f"| transform {apply['rows']:,} rows, all cores vs 1 core (after / before) "
                f"| {ratios['after_all_cores_vs_1_core_speedup']:.2f}× / "
                f"{ratios['before_all_cores_vs_1_core_speedup']:.2f}× | |"
            )
    pair = results.get("transform_apply_1core")
    if pair and pair.get("ratios"):
        ratios = pair["ratios"]
        rows.append(
            f"| transform {pair['rows']:,} rows, 1 core, back to back (load average "
            f"{pair['load_average_start'][0]:.1f} → {pair['load_average_end'][0]:.1f}): apply "
            f"outside Beam vs before, wall / CPU seconds | "
            f"{ratios['after_vs_before_wall_1_core']:.2f}× / "
            f"{ratios['after_vs_before_cpu_1_core']:.2f}× | |"
        )
    trainer = results.get("trainer")
    if trainer:
        o, t = trainer["overhead"], trainer["throughput"]
        rows.append(
            f"| trainer overhead vs run_fn called directly (taxi) | {o['ratio']:.3f}× "
            f"(medians {o['ratio_of_medians']:.3f}×) | {o['target']}× |"
        )
        rows.append(
            f"| data_accessor vs hand-tuned tf.data reader | {t['ratio']:.3f}× "
            f"(medians {t['ratio_of_medians']:.3f}×) | {t['target']}× |"
        )
    multi = results.get("multi_node")
    if multi:
        for row in multi["rows"]:
            rows.append(
                f"| multi-node on loopback ({multi['cores']} cores): {row['workers']} worker(s) "
                f"| {row['steps_per_s']} steps/s, {row['vs_1_worker']:.2f}× of 1 worker | "
                "none (one machine: no scaling expected) |"
            )
        if multi.get("launcher"):
            over = multi["launcher"]
            rows.append(
                "| launcher's own overhead, submit → first step in the chief's log (2 workers, "
                "local API server and pods, no cluster) | "
                f"{over['launcher_overhead_s']:.1f} s ({over['launcher_first_step_s']:.1f} s vs "
                f"{over['direct_first_step_s']:.1f} s started directly) | |"
            )
    tuner = results.get("tuner")
    if tuner:
        rows.append(
            f"| tuner overhead vs tuner_fn + search called directly (penguins, "
            f"{tuner['trials']} trials) | {tuner['ratio']:.3f}× (medians "
            f"{tuner['ratio_of_medians']:.3f}×) | {tuner['target']}× |"
        )
    storage = results.get("storage")
    if storage:
        for side, name in (("s3", "S3 server (moto)"), ("gs", "GCS emulator")):
            rows.append(
                f"| ingest {storage['rows']:,} rows from the {name} vs a local file | "
                f"{storage[side + '_ratio']:.2f}× ({storage[side + '_s']:.1f} s vs "
                f"{storage['local_s']:.1f} s) | ≤ 1.30× |"
            )
    stats = results.get("statistics")
    if stats:
        for e in stats["sizes"]:
            rows.append(
                f"| statistics {e['rows']:,} rows vs ingest of the same data | {e['ratio']:.2f}× "
                f"({e['statistics_s']:.1f} s vs {e['ingest_s']:.1f} s; validate "
                f"{e['validate_s']:.1f} s) | ≤ 0.5× |"
            )
        lin = stats["linearity"]
        rows.append(
            "| statistics marginal cost per row between sizes "
            f"({' / '.join(f'{x:.2f}' for x in lin['marginal_us_per_row'])} µs) | "
            f"spread {lin['spread']:.2f}× | ≤ 1.20× |"
        )
    images = results.get("images")
    if images:
        for size in images["sizes"]:
            target = "≤ 2.5 GB" if size["image"].startswith("tfkfp:") else "(TFX: 12.3 GB)"
            rows.append(
                f"| image {size['image']} | {size['uncompressed_bytes'] / 1e9:.2f} GB "
                f"({size['compressed_bytes'] / 1e9:.2f} GB gzip) | {target} |"
            )
        for cold in images["cold_starts"]:
            target = f"≤ {cold_start_target(cold['stage'])} s"
            rows.append(
                f"| cold start {cold['stage']} in {cold['image']} | "
                f"{cold['cold_start_s']:.2f} s | {target} |"
            )
    cold = results.get("cold_start")
    for r in (cold or {}).get("stages", []):
        first = "n/a" if r["cold_start_s"] is None else f"{r['cold_start_s']:.2f} s"
        rows.append(
            f"| cold start {r['stage']} in a {cold['where']} (loads: "
            f"{', '.join(r['loaded']) or 'no TF/Beam/TFMA'}) | {first} | (image: ≤ {r['target_s']} s) |"
        )
    progress = results.get("progress")
    if progress:
        rows.append(
            f"| `tfkfp demo` with the progress display vs without (medians of "
            f"{progress['reps']}) | {progress['ratio']:.3f}× | ≤ 1.02× |"
        )
        if "display_cpu_share" in progress:
            rows.append(
                f"| · the display's own CPU time, share of the demo's wall time | "
                f"{progress['display_cpu_share']:.2%} | ≤ 2% |"
            )
    run = results.get("run")
    if run:
        parts = ", ".join(f"{name} {s / 60:.1f}" for name, s in run["sections_s"].items())
        rows.append(
            f"| `make bench` wall time | {run['total_s'] / 60:.1f} min ({parts}) | ≤ 30 min |"
        )
    return "\n".join(rows) + "\n"


def chart(results: dict, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e2e, scale = results.get("e2e") or [], results.get("scale")
    if not e2e and not scale:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    # The stages the e2e runs timed, in their order (bench.e2e no longer exports a list).
    stages = list(dict.fromkeys(s["stage"] for run in e2e for s in run["stages"]))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {stage: cycle[i % len(cycle)] for i, stage in enumerate(stages)}
    for i, run in enumerate(e2e):
        bottom = 0.0
        for s in run["stages"]:
            label = s["stage"] if i == 0 else None
            ax.bar(i, s["seconds"], bottom=bottom, color=colours[s["stage"]], label=label)
            bottom += s["seconds"]
    ax.set_xticks(range(len(e2e)), [r["pipeline"] for r in e2e])
    ax.set_ylabel("seconds")
    ax.set_title("Local pipeline time per stage")
    ax.legend(fontsize=8)
    ax = axes[1]
    if scale:
        for stage in ("transform", "evaluator"):
            entries = scale[stage]
            ax.plot(
                [e["rows"] for e in entries],
                [e["stage_s"] for e in entries],
                "o-",
                label=f"{stage} (tfkfp)",
            )
            ax.plot(
                [e["rows"] for e in entries],
                [e["direct_s"] for e in entries],
                "x--",
                label=f"{stage} (direct)",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows")
        ax.set_ylabel("seconds")
        ax.set_title("Scaling")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> dict:
    results = {"machine": machine()}
    for name in (
        "tfx_peer",
        "cold_start",
        "e2e",
        "warm",
        "scale",
        "big",
        "transform_apply",
        "transform_apply_1core",
        "trainer",
        "tuner",
        "multi_node",
        "statistics",
        "storage",
        "images",
        "progress",
        "run",
    ):
        results[name] = _load(name)
    write_json(RESULTS / "results.json", results)
    (RESULTS / "results.md").write_text(table(results))
    chart(results, RESULTS / "results.png")
    print(table(results))
    return results


if __name__ == "__main__":
    main()
