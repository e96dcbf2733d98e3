"""Lua benchmark (issue 3): per-node cost, runtime creation, hook overhead, parallel speed-up.

    .venv/bin/python benchmarks/bench_lua.py

Prints each figure next to its target. Timings are the best of a few repetitions,
so a busy machine shows up as noise, not as a trend.
"""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from collections.abc import Callable

import lupa.lua54 as lupa

import tea
from tea.lua import LuaRuntime, LuaSettings

LOOP = "local s = 0 for i = 1, {n} do s = s + i % 7 end return {{s = s}}"
STATE = {"count": 1, "name": "bench", "items": [1, 2, 3], "config": {"on": True}}


def best(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def per_node() -> None:
    lua = LuaRuntime()
    n = 20_000

    def nodes() -> None:
        for _ in range(n):
            lua.run_node("return {count = state.count + 1}", STATE, {}, node="n")

    def conditions() -> None:
        for _ in range(n):
            lua.eval_condition("state.count > 3", STATE, {}, node="c")

    print(f"trivial Lua node (reused runtime):  {best(5, nodes) / n * 1e6:7.1f} us   target <= 20 us")
    print(f"Lua condition (reused runtime):     {best(5, conditions) / n * 1e6:7.1f} us")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def creation() -> None:
    # RSS first: once runtimes have been freed, malloc reuses their memory.
    n = 300
    LuaRuntime().close()
    gc.collect()
    before = rss()
    runtimes = [LuaRuntime() for _ in range(n)]
    after = rss()
    lua_side = statistics.mean(r.memory_used() for r in runtimes)
    for runtime in runtimes:
        runtime.close()
    created = best(3, lambda: [LuaRuntime() for _ in range(n)]) / n
    print(f"runtime creation:                   {created * 1e6:7.1f} us")
    print(f"memory per runtime (Lua heap):      {lua_side / 1024:7.1f} KB   seed estimate 30-50 KB")
    print(f"memory per runtime (process RSS):   {(after - before) / n / 1024:7.1f} KB")


def hook_overhead() -> None:
    code = LOOP.format(n=10_000_000)
    raw = lupa.LuaRuntime().compile(code)
    lua = LuaRuntime()
    hooked = best(3, lambda: lua.run_node(code, {}, {}, node="n"))
    bare = best(3, raw)
    print(f"CPU loop, tea runtime / bare lupa:  {hooked / bare:7.2f} x  (the count hook's cost)")


def two_threads() -> None:
    code = LOOP.format(n=20_000_000)
    runtimes = [LuaRuntime(LuaSettings(timeout_seconds=300)) for _ in range(2)]

    def one(lua: LuaRuntime) -> None:
        lua.run_node(code, {}, {}, node="n")

    def sequential() -> None:
        for lua in runtimes:
            one(lua)

    def parallel() -> None:
        threads = [threading.Thread(target=one, args=(lua,)) for lua in runtimes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    ratio = best(5, sequential) / best(5, parallel)
    print(f"2 threads, own runtimes, vs serial: {ratio:7.2f} x  target >= 1.85 x")


ENGINE = """
name: lua_bench
settings:
  lua: {{timeout_seconds: 300}}
nodes:
  - name: start
    run: "return {{}}"
  - name: a
    language: lua
    run: "{loop}"
  - name: b
    language: lua
    run: "{loop}"
  - name: join
    run: "return {{}}"
edges:
{edges}
"""
FAN_OUT = """  - from: start
    to: [a, b]
    parallel: true
    parallel_strategy: thread
    fan_in: join
"""
CHAIN = """  - {from: start, to: a}
  - {from: a, to: b}
  - {from: b, to: join}
"""


def engine_fan_out() -> None:
    loop = LOOP.format(n=20_000_000)
    parallel = tea.loads(ENGINE.format(loop=loop, edges=FAN_OUT))
    sequence = tea.loads(ENGINE.format(loop=loop, edges=CHAIN))
    ratio = best(3, lambda: sequence.invoke({})) / best(3, lambda: parallel.invoke({}))
    print(f"engine: 2-branch Lua fan-out, thread strategy, vs the same nodes in sequence: "
          f"{ratio:.2f} x  target >= 1.85 x")


def main() -> None:
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    per_node()
    creation()
    hook_overhead()
    two_threads()
    engine_fan_out()


if __name__ == "__main__":
    main()
