"""Engine benchmark (issue 2): per-node, per-iteration, fan-out, load and start-up costs.

    .venv/bin/python benchmarks/bench_engine.py

Prints each figure next to its target and the reference implementation's figure.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tea

ROOT = Path(__file__).resolve().parent.parent
TEA = str(Path(sys.executable).parent / "tea")


def chain_yaml(n: int) -> str:
    lines = ["name: chain", "nodes:"]
    for i in range(n):
        lines += [f"  - name: n{i}", "    run: |", f"      return {{'v{i % 10}': {i}}}"]
    return "\n".join(lines) + "\n"


LOOP_YAML = """
name: loop
nodes:
  - name: step
    run: |
      return {"i": state["i"] + 1}
    goto:
      - if: "state.i < state.limit"
        to: step
      - to: __end__
"""

FANOUT_YAML = """
name: fanout
settings:
  parallel: {max_workers: 8}
nodes:
  - name: start
    run: |
      return {"x": 1}
""" + "".join(
    f"""  - name: b{i}
    run: |
      return {{"y": state["x"] + {i}}}
"""
    for i in range(8)
) + """  - name: merge
    run: |
      return {"total": sum(r["y"] for r in parallel_results)}
edges:
  - from: start
    to: [b0, b1, b2, b3, b4, b5, b6, b7]
    parallel: true
    fan_in: merge
"""


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def process_time(args: list[str], repeat: int = 10) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(label: str, value: float, unit: str, target: float, reference: str) -> None:
    ok = "ok " if value <= target else "MISS"
    print(f"{ok} {label:<42} {value:9.2f} {unit:<3} (target <= {target:g} {unit}; reference {reference})")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        chain = d / "chain.yaml"
        chain.write_text(chain_yaml(200))
        (d / "loop.yaml").write_text(LOOP_YAML)
        (d / "fanout.yaml").write_text(FANOUT_YAML)

        load_s = best(lambda: tea.load(chain), repeat=10)
        wf = tea.load(chain)
        wf.invoke({})
        per_node = best(lambda: wf.invoke({}), repeat=20) / 200
        loop = tea.load(d / "loop.yaml")
        loop.invoke({"i": 0, "limit": 10})
        per_iter = best(lambda: loop.invoke({"i": 0, "limit": 2000}), repeat=5) / 2000
        fan = tea.load(d / "fanout.yaml")
        fan.invoke({})
        per_fanout = best(lambda: fan.invoke({}), repeat=50)

        version = process_time([TEA, "--version"])
        run = process_time([TEA, "run", "-q", "-o", str(d / "out.json"), str(chain)])

    print("tea engine benchmark (in-process figures: best of several runs)")
    report("per executed run: node (200-node chain)", per_node * 1e6, "us", 10, "68 us")
    report("per iteration (2000-step goto loop)", per_iter * 1e6, "us", 15, "104 us")
    report("per invoke of an 8-branch fan-out", per_fanout * 1e3, "ms", 0.5, "2.1 ms")
    report("load of the 200-node workflow", load_s * 1e3, "ms", 10, "40 ms")
    report("tea --version (process, median)", version * 1e3, "ms", 80, "320 ms")
    report("tea run of the 200-node chain (process)", run * 1e3, "ms", 150, "460 ms")


if __name__ == "__main__":
    main()
