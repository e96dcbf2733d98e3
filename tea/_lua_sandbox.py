"""The Lua side of a tea Lua runtime: the bootstrap chunk every runtime runs first.

The chunk runs once per ``lupa`` runtime, with the full standard library, before
any workflow code. It captures what the trusted functions need as upvalues, then
(in sandbox mode) strips the globals down to the safe set, and returns four
trusted functions to Python::

    compile(source)        -> function | nil, message
    run(fn, deadline, out, state, variables, extras)
                           -> ok, value | message, stashed, lua_line, timed_out
                              (``print`` calls ``out(text)`` meanwhile, when it is given)
    take()                 -> the stashed result (a table, function...), once
    reset()                -> timed_out (after a failure inside ``run`` itself)

Workflow code never sees these functions, the run state or the captured
library functions: they live only in upvalues, and ``debug`` is gone.

The timeout is a count hook (every ``HOOK_COUNT`` VM instructions). It reads the
process CPU clock (``os.clock``, no GIL) and only every ``CHECK_INTERVAL`` seconds
of CPU does it call Python's ``time.monotonic`` (which takes the GIL) to compare
against the wall-clock deadline, so two runtimes in two threads stay parallel.
Hooks are per coroutine in Lua, so ``coroutine.create``/``wrap`` hook each new
coroutine, and ``pcall``/``xpcall``/``coroutine.resume`` re-raise once the
deadline has passed or memory ran out, so neither can be swallowed.
"""

from __future__ import annotations

import threading

import lupa.lua54 as lupa

__all__ = [
    "BOOTSTRAP",
    "CHECK_INTERVAL",
    "CHUNK_NAME",
    "HOOK_COUNT",
    "MEMORY_ERROR",
    "bootstrap_bytecode",
]

CHUNK_NAME = "=lua"
"""Chunk name of workflow code: Lua reports its errors as ``lua:<line>: message``."""

HOOK_COUNT = 1000
"""VM instructions between two runs of the timeout hook."""

CHECK_INTERVAL = 0.01
"""Process CPU seconds between two wall-clock checks (the timeout's resolution)."""

MEMORY_ERROR = "not enough memory"
"""The message Lua gives every allocation failure (including lupa's ``max_memory``)."""

BOOTSTRAP = r"""
local monotonic, sandboxed, hook_count, check_interval, chunk_source = ...

local G = _G
local error, next, pcall, rawget, rawset, select, setmetatable, tostring, type, xpcall, load =
      error, next, pcall, rawget, rawset, select, setmetatable, tostring, type, xpcall, load
local sethook, getinfo = debug.sethook, debug.getinfo
local clock, huge = os.clock, math.huge
local co_create, co_resume = coroutine.create, coroutine.resume
local concat, gsub, utf8_len = table.concat, string.gsub, utf8.len
local stderr = io.stderr
local stderr_write = stderr.write
local raw_collectgarbage = collectgarbage

local TIMEOUT = "time limit exceeded"
local MEMERR = "not enough memory"

-- Run state, as upvalues: setting one never allocates (the message handler may
-- run when memory is exhausted) and the hook reads them cheaply.
local deadline, expired, error_line = huge, false, false
local next_check, last_cpu, every, skip = 0, 0, 1, 1

-- A count hook makes Lua 5.4 test every instruction, so the hook itself must be
-- cheap: os.clock (a syscall) is read only every `every` hooks (1..16), and
-- `every` adapts so that reads are 0.5-2 ms of CPU apart when instructions are
-- cheap, and every hook when they are slow C calls.
local function hook()
  if expired then error(TIMEOUT, 0) end
  skip = skip - 1
  if skip > 0 then return end
  local now = clock()
  local elapsed = now - last_cpu
  if elapsed < 0.0005 then
    if every < 16 then every = every * 2 end
  elseif elapsed > 0.002 and every > 1 then
    every = every // 2
  end
  last_cpu, skip = now, every
  if now < next_check then return end
  next_check = now + check_interval
  if monotonic() >= deadline then
    expired = true
    error(TIMEOUT, 0)
  end
end

-- pcall and friends must not swallow a limit: the run is over once one is hit.
local function recheck(ok, ...)
  if expired then error(TIMEOUT, 0) end
  if not ok and (...) == MEMERR then error(MEMERR, 0) end
  return ok, ...
end

local function safe_pcall(f, ...) return recheck(pcall(f, ...)) end
local function safe_xpcall(f, handler, ...)
  if type(handler) ~= "function" then return xpcall(f, handler, ...) end
  -- An error raised by the hook reaches the handler while hooks are off, so a
  -- looping handler could never be stopped: once expired, it is not called.
  return recheck(xpcall(f, function(err)
    if expired then return err end
    return handler(err)
  end, ...))
end

local function safe_create(f)
  local co = co_create(f)
  sethook(co, hook, "", hook_count)
  return co
end

local function safe_resume(co, ...) return recheck(co_resume(co, ...)) end

local function unwrap(ok, ...)
  if expired then error(TIMEOUT, 0) end
  if not ok then error((...), 0) end
  return ...
end

local function safe_wrap(f)
  local co = safe_create(f)
  return function(...) return unwrap(co_resume(co, ...)) end
end

-- Where print writes during a run: the caller's function (one line, the node's
-- prefix added there), else the process's stderr.
local printer = nil

local function safe_print(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  if printer then
    local text = concat(parts, "\t")
    -- Python takes text: bytes that are not UTF-8 are shown as "?", not an error.
    if not utf8_len(text) then text = gsub(text, "[\128-\255]", "?") end
    printer(text)
  else
    stderr_write(stderr, concat(parts, "\t"), "\n")
  end
end

local function safe_setmetatable(t, mt)
  -- A finalizer would run outside any node, where no deadline guards it.
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not allowed in the Lua sandbox", 2)
  end
  return setmetatable(t, mt)
end

local GC_OPTIONS = {collect = true, count = true, step = true, isrunning = true}

local function safe_collectgarbage(opt, ...)
  if opt == nil then opt = "collect" end
  if not GC_OPTIONS[opt] then
    error("collectgarbage('" .. tostring(opt) .. "') is not allowed in the Lua sandbox", 2)
  end
  return raw_collectgarbage(opt, ...)
end

local function safe_load(chunk, chunkname, mode, env)
  if type(chunk) ~= "string" then
    error("load: only source text is allowed in the Lua sandbox", 2)
  end
  if env ~= nil then
    error("load: chunks always run in the sandbox environment", 2)
  end
  return load(chunk, chunkname, "t", G)
end

coroutine.create, coroutine.wrap, coroutine.resume = safe_create, safe_wrap, safe_resume
G.pcall, G.xpcall, G.print = safe_pcall, safe_xpcall, safe_print
G.python = nil
package.loaded.python = nil

if sandboxed then
  for _, name in next, {"io", "require", "package", "dofile", "loadfile", "debug", "warn"} do
    G[name] = nil
  end
  G.os = {time = os.time, clock = os.clock, date = os.date}
  string.dump = nil
  G.setmetatable = safe_setmetatable
  G.collectgarbage = safe_collectgarbage
  G.load = safe_load
  -- Strings share one metatable; its __index must be the trimmed string table and
  -- the metatable itself unreachable (getmetatable("") gives false).
  local string_mt = getmetatable("")
  string_mt.__index = string
  string_mt.__metatable = false
end

local function where()
  -- Walk out from the handler to the innermost frame of workflow code.
  for level = 2, 200 do
    local info = getinfo(level, "Sl")
    if info == nil then return false end
    if info.source == chunk_source and info.currentline > 0 then return info.currentline end
  end
  return false
end

local function handler(err)
  local ok, line = pcall(where)
  error_line = ok and line
  return err
end

-- Prebuilt, so describing an error never allocates.
local DESCRIPTIONS = {}
for _, kind in next, {"nil", "boolean", "table", "function", "thread", "userdata"} do
  DESCRIPTIONS[kind] = "(error object is a " .. kind .. " value)"
end
local IMMEDIATE = {string = true, number = true, boolean = true, ["nil"] = true}

-- Extra names (parallel_results) are globals for one call; what they shadowed
-- comes back afterwards.
local extras_set, shadowed, stash = false, {}, nil

local function reset()
  local was_expired = expired
  deadline, expired, printer = huge, false, nil
  if extras_set then
    for name in next, extras_set do
      rawset(G, name, shadowed[name])
      shadowed[name] = nil
    end
    extras_set = false
  end
  return was_expired
end

-- Only values lupa converts without allocating Lua memory are returned directly:
-- Python lifts the memory limit before it fetches a table with take().
local function finish(ok, value)
  local timed_out = reset()
  -- A time limit hit is final even if the code caught it (coroutine.close returns
  -- the error of a coroutine it closes): the run fails as timed out.
  if timed_out then return false, TIMEOUT, false, error_line, true end
  if ok then
    if IMMEDIATE[type(value)] then return true, value, false, false, false end
    stash = value
    return true, nil, true, false, false
  end
  if type(value) ~= "string" and type(value) ~= "number" then value = DESCRIPTIONS[type(value)] end
  return false, value, false, error_line, timed_out
end

local function take()
  local value = stash
  stash = nil
  return value
end

local function run(fn, stop_at, out, state, variables, extras)
  printer = out
  rawset(G, "variables", variables)
  if extras then
    for name, value in next, extras do
      shadowed[name] = rawget(G, name)
      rawset(G, name, value)
    end
    extras_set = extras
  end
  error_line, next_check, skip = false, 0, 1
  deadline = stop_at
  return finish(xpcall(fn, handler, state))
end

local function compile(source)
  local fn, message = load(source, chunk_source, "t", G)
  return fn, message
end

sethook(hook, "", hook_count)
return compile, run, take, reset
"""


_bytecode_lock = threading.Lock()
_bytecode: bytes | None = None


def bootstrap_bytecode() -> bytes:
    """``BOOTSTRAP`` compiled once per process: loading bytecode halves runtime creation."""
    global _bytecode
    with _bytecode_lock:
        if _bytecode is None:
            compiler = lupa.LuaRuntime(encoding=None, register_eval=False, register_builtins=False)
            _bytecode = bytes(compiler.eval("string.dump")(compiler.compile(BOOTSTRAP)))
        return _bytecode
