"""Missions (issue 12): planning and scheduling a 10,000-step DAG, each figure next to its goal.

    .venv/bin/python benchmarks/bench_mission.py [--steps 10000] [--repeat 3]

The mission is generated: ``--steps`` noop steps, each depending on up to three earlier
steps (random, seeded, among the 200 before it, so the DAG is both wide and deep). Every
figure is the median of ``--repeat`` runs:

  * dry-run, whole process: ``tea run mission.yaml --dry-run`` when the CLI knows missions,
    else a child Python doing what it does (load, validate, plan, print the JSON); then its
    parts measured in a child: importing the CLI, reading the YAML, validating and planning,
    and for reference the same YAML read by PyYAML's composer (what a file with anchors,
    tags or folded scalars costs: ``tea.yamlsrc`` reads the plain block style itself);
  * the run on threads: ``run_mission`` in a child process (load excluded, then included);
    the run divided by the number of steps is the scheduling overhead per step (noop
    steps do nothing, so the whole cost is the scheduler's and the executor's);
  * two independent 1-second ``command`` steps with ``max_concurrent_steps: 2``.

Not a test: it prints, it does not fail. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEA = str(Path(sys.executable).parent / "tea")

DRY_RUN = """
import json, sys
from tea.mission import load_mission, plan
print(json.dumps(plan(load_mission(sys.argv[1]))))
"""

PARTS = """
import json, sys, time
started = time.perf_counter()
import tea.cli
from pathlib import Path
from tea.mission import plan
from tea.mission.format import parse_mission
from tea.yamlsrc import collector_paused, load_yaml
imported = time.perf_counter()
text = Path(sys.argv[1]).read_text()
with collector_paused():
    doc = load_yaml(text, sys.argv[1])
    parsed = time.perf_counter()
    json.dumps(plan(parse_mission(doc)))
    checked = time.perf_counter()
# An anchor anywhere sends the file to PyYAML's composer (the reader of anything unusual).
load_yaml("x_anchor: &x 1\\n" + text, sys.argv[1])
print(json.dumps({"imports": imported - started, "yaml": parsed - imported, "check": checked - parsed,
                  "pyyaml": time.perf_counter() - checked}))
"""

RUN = """
import json, sys, time
started = time.perf_counter()
from tea.mission import load_mission, run_mission
mission = load_mission(sys.argv[1])
loaded = time.perf_counter()
result = run_mission(mission, autosave=False, progress=False)
done = time.perf_counter()
print(json.dumps({"status": result.status, "run": done - loaded, "whole": done - started}))
"""

TWO_SLEEPS = """
name: two_sleeps
config: {max_concurrent_steps: 2}
settings: {shell: {enabled: true}}
steps:
  - {id: one, step_type: command, parameters: {command: [sleep, "1"]}}
  - {id: two, step_type: command, parameters: {command: [sleep, "1"]}}
"""


def generate(path: Path, steps: int, seed: int = 12) -> None:
    """A random DAG of noop steps, each with up to three dependencies among the 200 before it."""
    rnd = random.Random(seed)
    lines = ["name: generated", "steps:"]
    for n in range(steps):
        lines.append(f"  - id: s{n:05d}")
        lines.append("    step_type: noop")
        if n:
            deps = sorted({f"s{rnd.randrange(max(0, n - 200), n):05d}" for _ in range(rnd.randint(0, 3))})
            if deps:
                lines.append(f"    depends_on: [{', '.join(deps)}]")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def cli_knows_missions(path: Path) -> bool:
    done = subprocess.run([TEA, "run", str(path), "--dry-run"], capture_output=True, text=True, check=False)
    return done.returncode == 0 and '"critical_path"' in done.stdout


def timed(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed:\n{done.stderr}")
    return elapsed, done.stdout


def child(script: str, mission: Path) -> dict[str, float]:
    _, out = timed([sys.executable, "-c", script, str(mission)])
    data: dict[str, float] = json.loads(out)
    return data


def line(label: str, value: str, goal: str = "") -> None:
    print(f"  {label:<52} {value:>12}" + (f"   goal {goal}" if goal else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tea-bench-mission-") as tmp:
        mission = Path(tmp) / "generated.yaml"
        generate(mission, args.steps)
        print(f"{args.steps} noop steps, up to 3 dependencies each; median of {args.repeat}")
        via_cli = cli_knows_missions(mission)
        dry = [TEA, "run", str(mission), "--dry-run"] if via_cli else [sys.executable, "-c", DRY_RUN, str(mission)]
        dry_s = statistics.median(timed(dry)[0] for _ in range(args.repeat))
        line(f"--dry-run, whole process ({'tea run' if via_cli else 'python -c, no CLI yet'})",
             f"{dry_s * 1000:.0f} ms", "<= 300 ms")
        parts = [child(PARTS, mission) for _ in range(args.repeat)]
        line("  of which importing tea.cli (after Python's start)",
             f"{statistics.median(p['imports'] for p in parts) * 1000:.0f} ms")
        line("  of which YAML parsing (tea.yamlsrc.load_yaml)",
             f"{statistics.median(p['yaml'] for p in parts) * 1000:.0f} ms")
        line("  of which validating and planning",
             f"{statistics.median(p['check'] for p in parts) * 1000:.0f} ms")
        line("  the same YAML through PyYAML (files with anchors)",
             f"{statistics.median(p['pyyaml'] for p in parts) * 1000:.0f} ms", "(for reference)")
        threads = [child(RUN, mission) for _ in range(args.repeat)]
        run_s = statistics.median(r["run"] for r in threads)
        line("run on threads (run_mission)", f"{run_s:.2f} s", "<= 3 s")
        line("run on threads, load included (whole child)",
             f"{statistics.median(r['whole'] for r in threads):.2f} s", "(for reference)")
        line("scheduling overhead per step (in-process, threads)", f"{run_s / args.steps * 1e6:.0f} us", "<= 100 us")
        sleeps = Path(tmp) / "two_sleeps.yaml"
        sleeps.write_text(TWO_SLEEPS, encoding="utf-8")
        two = [child(RUN, sleeps)["run"] for _ in range(args.repeat)]
        line("two independent 1 s steps, max_concurrent_steps: 2", f"{statistics.median(two):.2f} s", "<= 1.2 s")


if __name__ == "__main__":
    main()
