"""The benchmark report: rows (figure beside its ceiling), machine info, Markdown and PNG plots."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt


@dataclass
class Row:
    """One figure of the report. `ratio` is value / ceiling; `target` says what is expected."""

    bench: str
    figure: str
    value: float | None
    unit: str
    ceiling: float | None = None
    ceiling_label: str = ""
    target: str = ""
    notes: str = ""
    error: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.ceiling:
            return None
        return self.value / self.ceiling

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def _first_line(command: list[str]) -> str:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    except OSError:
        return None
    return round(int(match.group(1)) / 1024**2, 1) if match else None


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"') + f" (kernel {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def _git_commit() -> str:
    commit = _first_line(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"])
    return f" (commit {commit})" if re.fullmatch(r"[0-9a-f]{7,}", commit) else ""


def machine_info() -> dict[str, str]:
    """What the figures were measured on."""
    from importlib.metadata import version

    memory = _memory_gib()
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": f"{memory} GiB" if memory else "unknown",
        "OS": _os_name(),
        "Python": platform.python_version(),
        "Mosquitto": _first_line(["mosquitto", "-h"]).replace("mosquitto version ", ""),
        "InfluxDB": _first_line(["influxd", "version"]),
        "Boucle": version("boucle") + _git_commit(),
        "load average (1, 5, 15 min) at the end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "paho-mqtt": version("paho-mqtt"),
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[Row], machine: dict[str, str], plots: dict[str, str], mode: str,
             started: datetime, wall_s: float) -> str:
    """The report: the table of figures, the machine, the plots."""
    out = [f"# Boucle benchmark report ({mode})", "",
           (f"Run {started.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')}, {wall_s:.0f} s. "
            "Ratio = value / ceiling, both measured in this run on this machine."), "",
           "| benchmark | figure | value | ceiling | ratio | target | notes |",
           "|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        value = f"**failed**: {r.error}" if r.error else f"{_fmt(r.value)} {r.unit}"
        ceiling = f"{_fmt(r.ceiling)} {r.unit} ({r.ceiling_label})" if r.ceiling is not None else "—"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "—"
        out.append(f"| {r.bench} | {_cell(r.figure)} | {_cell(value)} | {_cell(ceiling)} | {ratio} "
                   f"| {_cell(r.target)} | {_cell(r.notes)} |")
    out += ["", "## Machine", "", "| | |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in machine.items()]
    if plots:
        out += ["", "## Plots", ""]
        out += [f"![{title}]({name})" for name, title in plots.items()]
    return "\n".join(out) + "\n"


def throughput_plot(path: Path, gateway: list[dict], ceilings: dict[int, float]) -> None:
    """Gateway readings/s against processes, one line per payload size, ceilings dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for i, rpp in enumerate(sorted({g["readings_per_payload"] for g in gateway})):
        points = sorted((g["processes"], g["readings_per_s"]) for g in gateway if g["readings_per_payload"] == rpp)
        color = f"C{i}"
        ax.plot([p for p, _ in points], [v for _, v in points], "o-", color=color,
                label=f"gateway, {rpp} per payload")
        if rpp in ceilings:
            ax.axhline(ceilings[rpp], color=color, linestyle="--", linewidth=1,
                       label=f"bare paho ceiling, {rpp} per payload")
    ax.set_xlabel("gateway processes")
    ax.set_ylabel("readings/s into durable storage")
    ax.set_xticks(sorted({g["processes"] for g in gateway}) or [1])
    ax.set_yscale("log")  # ceilings and 1-reading payloads differ by orders of magnitude
    ax.set_title("Gateway ingest throughput")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def latency_plot(path: Path, latencies_ms: list[float], p50: float | None, p99: float | None,
                 floor_p50: float | None) -> None:
    """Histogram of publish → visible-in-API latencies with p50, p99 and the MQTT floor."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    if latencies_ms:
        ax.hist(latencies_ms, bins=50, color="C0", alpha=0.8)
    for value, label, style in ((p50, "p50", "-"), (p99, "p99", "--"), (floor_p50, "MQTT delivery p50", ":")):
        if value is not None:
            ax.axvline(value, color="k", linestyle=style, linewidth=1, label=f"{label} {_fmt(value)} ms")
    ax.set_xlabel("publish → visible in the API (ms)")
    ax.set_ylabel("readings")
    ax.set_title(f"End-to-end latency ({len(latencies_ms):,} readings)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
