"""bench/pool_sizing.py's chart: throughput against pool size, one panel per (pin mode, workload)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sizing_report import UNIT, WORKLOADS

MARKERS = {
    "plan": ("*", "tab:green", 260),
    "advice": ("P", "tab:purple", 150),
    "baseline": ("s", "tab:red", 90),
}
LEGEND = {"plan": "toolkit plan", "advice": "calibrate's advice", "baseline": "fixed baselines"}


def chart(doc: dict[str, Any], path: Path) -> None:
    """TPS against pool size (log2 x), plan, advice and baselines marked, a direct ceiling as a line."""
    import matplotlib as mpl  # noqa: PLC0415 - only the report needs it

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = [(mode, w, rep) for mode, per in doc["single"].items() for w, rep in per.items()]
    cols = max(len(per) for per in doc["single"].values())
    nrows = len(doc["single"])
    fig, axes = plt.subplots(nrows, cols, figsize=(6.5 * cols, 4.8 * nrows), squeeze=False)
    for i, (mode, w, rep) in enumerate(panels):
        ax = axes[i // cols][i % cols]
        rows = rep["rows"]
        sweep = sorted((r for r in rows if r["kind"] == "sweep"), key=lambda r: r["pool"])
        ax.plot(
            [r["pool"] for r in sweep],
            [r["tps"] for r in sweep],
            "o-",
            color="tab:blue",
            label="sweep (median)",
        )
        for r in rows:
            if r["kind"] in MARKERS and r["tps"] is not None and r["key"] != "formula":
                m, colour, size = MARKERS[r["kind"]]
                ax.scatter([r["pool"]], [r["tps"]], marker=m, s=size, color=colour, zorder=3)
                short = {"plan": f"plan {r['pool']}", "advice": f"advice {r['pool']}"}.get(
                    r["kind"], r["label"].split(" (")[0]
                )
                offset = (6, 6 if r["kind"] != "baseline" else -14)
                ax.annotate(
                    short, (r["pool"], r["tps"]), textcoords="offset points", xytext=offset, fontsize=8
                )
        direct = [r for r in rows if r["kind"] == "direct" and r["tps"]]
        if direct:
            top = max(direct, key=lambda r: r["tps"])
            ax.axhline(
                top["tps"], ls="--", color="grey", label=f"direct to PostgreSQL, {top['clients']} clients"
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["pool"] for r in rows if r["kind"] != "direct"}))
        ax.get_xaxis().set_major_formatter(mpl.ticker.ScalarFormatter())
        ax.set_xlabel("default_pool_size")
        ax.set_ylabel(f"{UNIT.get(w, 'TPS')} (median)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{WORKLOADS[w]}, {mode}", fontsize=10)
        ax.grid(True, alpha=0.3)
        for kind, (m, colour, _) in MARKERS.items():
            ax.scatter([], [], marker=m, color=colour, label=LEGEND[kind])
        ax.legend(fontsize=8, loc="lower center")
    for j in range(len(panels), nrows * cols):
        axes[j // cols][j % cols].axis("off")
    meta = doc["meta"]
    fig.suptitle(
        f"Pool size vs TPS, {meta['clients']} clients, one PgBouncer in transaction mode - "
        f"{meta['date']}, {meta['machine']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
