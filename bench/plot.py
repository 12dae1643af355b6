"""Plot time vs environment size (run by the bench tool venv's python, which has matplotlib).

``python bench/plot.py OUT.png < points.json`` (points written by bench/report.py).
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter


def main() -> int:
    points = json.load(sys.stdin)
    envs = sorted(points["envs"].items(), key=lambda item: item[1]["size"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    for key, label in points["labels"].items():
        xs = [e["size"] for _, e in envs if e["pack"].get(key)]
        ys = [e["pack"][key] for _, e in envs if e["pack"].get(key)]
        style = "-o" if key == "portenv" else "--o"
        left.plot(
            xs, ys, style, label=label.replace("`", ""), linewidth=2.5 if key == "portenv" else 1.2
        )
    left.set_title("pack, warm cache (build host)")
    unpack_keys = list(envs[0][1]["unpack"]) if envs else []
    for key in unpack_keys:
        xs = [e["size"] for _, e in envs if e["unpack"].get(key)]
        ys = [e["unpack"][key] for _, e in envs if e["unpack"].get(key)]
        style = ":s" if key.startswith("tar") else ("-o" if key.startswith("portenv") else "--o")
        right.plot(xs, ys, style, label=key, linewidth=2.5 if key.startswith("tar") else 1.2)
    right.set_title("unpack in a bare rootfs (no network, tmpfs)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("unpacked environment size (MiB, log)")
        ax.set_ylabel("seconds (median, log)")
        ax.grid(True, which="both", alpha=0.3)
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.yaxis.set_major_formatter(plain)
        some = FuncFormatter(lambda v, _pos: f"{v:g}" if f"{v:g}"[0] in "25" else "")
        ax.xaxis.set_minor_formatter(some)
        ax.yaxis.set_minor_formatter(some)
        ax.tick_params(which="minor", labelsize=7)
        ax.legend(fontsize=7.5)
        for name, env in envs:
            ax.axvline(env["size"], color="grey", alpha=0.15)
            ax.annotate(
                name,
                (env["size"], ax.get_ylim()[0]),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=9,
                color="grey",
            )
    fig.suptitle("portenv vs peers and the tar -xzf limit: time vs environment size")
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
