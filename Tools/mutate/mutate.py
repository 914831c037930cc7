#!/usr/bin/env python3
"""Mutation testing of DiffusionRestore (`make mutate`; Tools/mutate/README.md).

Each entry of Tools/mutate/mutations.json is one small fault (a sign, a constant, a dropped mask or skip, a
swapped key) in one source file, with the narrow XCTest filter that should catch it. The runner keeps a scratch
copy of the package in .build-mutate/src/ (refreshed from the working tree at the start of every run, only
changed files rewritten, so its .build stays incremental), builds it once unmutated and runs every filter on that
build (the baseline), then for each mutation: replaces its `find` text (which must occur exactly once), rebuilds
the tests incrementally, runs `swift test --skip-build --filter FILTER`, and restores the file whatever happens.

Statuses: killed (the filter failed, crashed or timed out: good), survived (the tests passed: a gap in the
tests), and defects of the list, which count as not killed: stale (`find` does not occur exactly once),
uncompilable (the mutated package does not build), baseline-fails (the filter fails without the mutation),
no-tests (the filter matches no test), error (the test run itself could not start).

Standard-library Python 3.11. Exit status 0 only when every selected mutation is killed.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIST = Path(__file__).resolve().with_name("mutations.json")
WORK = ROOT / ".build-mutate"
SCRATCH = WORK / "src"
LOGS = WORK / "logs"
SUMMARY = WORK / "last.json"

MODULES = ["Engine", "Checkpoints", "ImageIO", "Networks", "Operators", "Methods", "Tiling", "Report", "Service", "Batch"]
KILLED, SURVIVED = "killed", "survived"
STALE, UNCOMPILABLE, BASELINE_FAILS, NO_TESTS, ERROR = "stale", "uncompilable", "baseline-fails", "no-tests", "error"

# The Makefile's TEST_FLAGS, used when they cannot be read from it.
DEFAULT_TEST_FLAGS = ["-c", "release", "-Xswiftc", "-Ounchecked", "-Xswiftc", "-target-cpu", "-Xswiftc", "haswell",
                      "-Xcc", "-march=haswell", "-Xswiftc", "-enable-testing"]
# Copied into the scratch package besides the target folders named by `path:` in Package.swift.
PACKAGE_ITEMS = ["Package.swift", "Package.resolved", "Sources", "Tests", "Models", "Assets"]
SKIPPED_NAMES = {".build", ".swiftpm", "__pycache__", ".DS_Store"}


# MARK: - The list

def load_mutations() -> list[dict]:
    with open(LIST, encoding="utf-8") as f:
        mutations = json.load(f)
    if not isinstance(mutations, list):
        sys.exit(f"{LIST}: expected a JSON array")
    return mutations


def test_ids(root: Path) -> list[str]:
    """`Module.Class/testMethod` for every XCTest method under root/Tests (classes and their extensions)."""
    ids = []
    for module_dir in sorted((root / "Tests").iterdir()):
        if not module_dir.is_dir():
            continue
        for source in sorted(module_dir.rglob("*.swift")):
            current = None
            for line in source.read_text(encoding="utf-8", errors="replace").splitlines():
                declared = re.match(r"\s*(?:(?:final|public|open|internal|private|fileprivate)\s+)*(?:class|extension)\s+(\w+)", line)
                if declared:
                    current = declared.group(1)
                method = re.match(r"\s*(?:(?:override|public|open|internal|final|@\w+)\s+)*func\s+(test\w*)\s*\(\s*\)", line)
                if method and current:
                    ids.append(f"{module_dir.name}.{current}/{method.group(1)}")
    return ids


def check_list(mutations: list[dict], root: Path) -> list[str]:
    """Problems of the list against the sources and tests under `root` (empty when it is sound)."""
    problems = []
    ids = test_ids(root)
    classes = {i.split("/")[0] for i in ids}
    seen = set()
    required = ("id", "module", "file", "find", "replace", "filter", "why")
    for n, m in enumerate(mutations):
        name = m.get("id", f"#{n}")
        missing = [k for k in required if not isinstance(m.get(k), str) or not m.get(k)]
        if missing:
            problems.append(f"{name}: missing or empty {', '.join(missing)}")
            continue
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name):
            problems.append(f"{name}: id is not short-kebab-case")
        if name in seen:
            problems.append(f"{name}: duplicate id")
        seen.add(name)
        if m["module"] not in MODULES:
            problems.append(f"{name}: module {m['module']!r} is not one of {', '.join(MODULES)}")
        if m["find"] == m["replace"]:
            problems.append(f"{name}: replace equals find")
        path = root / m["file"]
        if not path.is_file():
            problems.append(f"{name}: no file {m['file']}")
        else:
            count = path.read_text(encoding="utf-8").count(m["find"])
            if count != 1:
                problems.append(f"{name}: `find` occurs {count} times in {m['file']} (must be exactly once)")
        try:
            pattern = re.compile(m["filter"])
        except re.error as e:
            problems.append(f"{name}: filter {m['filter']!r} is not a regular expression ({e})")
            continue
        named = set(re.findall(r"\b(\w+Tests)\.(\w+)", m["filter"]))
        for module, cls in named:
            if f"{module}.{cls}" not in classes:
                problems.append(f"{name}: filter names {module}.{cls}, which is not a test class in Tests/{module}")
        if not any(pattern.search(i) for i in ids):
            problems.append(f"{name}: filter {m['filter']!r} matches no test method")
    return problems


# MARK: - The scratch copy

def package_items() -> list[str]:
    """What the scratch package needs: the manifest, sources, tests, models, assets, and any other target folder."""
    manifest = (ROOT / "Package.swift").read_text(encoding="utf-8")
    extra = sorted({p for p in re.findall(r'path:\s*"([^"]+)"', manifest) if not p.startswith(("Sources/", "Tests/"))})
    return [p for p in PACKAGE_ITEMS + extra if (ROOT / p).exists() or (ROOT / p).is_symlink()]


def sync_scratch() -> int:
    """Makes SCRATCH mirror the package items of ROOT; rewrites only files whose bytes differ. Returns the count written."""
    written = 0
    SCRATCH.mkdir(parents=True, exist_ok=True)

    def copy_file(src: Path, dst: Path) -> None:
        nonlocal written
        if dst.is_symlink() or dst.is_dir():
            remove(dst)
        if src.is_symlink():
            target = os.readlink(src)
            if not (dst.is_symlink() and os.readlink(dst) == target):
                if dst.exists() or dst.is_symlink():
                    dst.unlink()
                os.symlink(target, dst)
                written += 1
            return
        data = src.read_bytes()
        if dst.is_file() and dst.stat().st_size == len(data) and dst.read_bytes() == data:
            return
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
        shutil.copymode(src, dst)
        written += 1

    def mirror(src: Path, dst: Path) -> None:
        if src.is_symlink() or src.is_file():
            copy_file(src, dst)
            return
        if dst.is_symlink() or dst.is_file():
            remove(dst)
        dst.mkdir(parents=True, exist_ok=True)
        wanted = {c.name for c in src.iterdir() if c.name not in SKIPPED_NAMES and not c.name.endswith(".pyc")}
        for child in dst.iterdir():
            if child.name not in wanted:
                remove(child)
        for name in sorted(wanted):
            mirror(src / name, dst / name)

    items = package_items()
    for item in items:
        mirror(ROOT / item, SCRATCH / item)
    for stale in PACKAGE_ITEMS:  # an item the repository no longer has (e.g. Package.resolved deleted)
        if stale not in items and (SCRATCH / stale).exists():
            remove(SCRATCH / stale)
    seed_dependencies()
    return written


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def seed_dependencies() -> None:
    """A fresh scratch build gets the repository's resolved checkouts, so it needs no network."""
    build = SCRATCH / ".build"
    if (build / "checkouts").exists() or not (ROOT / ".build" / "checkouts").is_dir():
        return
    build.mkdir(parents=True, exist_ok=True)
    for name in ("checkouts", "repositories"):
        if (ROOT / ".build" / name).is_dir():
            shutil.copytree(ROOT / ".build" / name, build / name, symlinks=True)
    if (ROOT / ".build" / "workspace-state.json").is_file():
        shutil.copy2(ROOT / ".build" / "workspace-state.json", build / "workspace-state.json")


# MARK: - Building and testing

def test_flags() -> list[str]:
    """TEST_FLAGS of the Makefile (with $(SPEED_FLAGS) expanded), or the defaults."""
    try:
        text = (ROOT / "Makefile").read_text(encoding="utf-8")
    except OSError:
        return DEFAULT_TEST_FLAGS
    variables = dict(re.findall(r"^([A-Z_]+)\s*:=\s*(.*)$", text, flags=re.M))
    flags = variables.get("TEST_FLAGS")
    if not flags:
        return DEFAULT_TEST_FLAGS
    for _ in range(5):
        flags = re.sub(r"\$\((\w+)\)", lambda v: variables.get(v.group(1), ""), flags)
    return flags.split()


def uses_swift_testing() -> bool:
    return any("import Testing" in p.read_text(encoding="utf-8", errors="replace") for p in (ROOT / "Tests").rglob("*.swift"))


def run(command: list[str], log: Path, timeout: float | None, env: dict | None = None) -> tuple[int | None, float]:
    """Runs `command` in SCRATCH, output to `log`; returns (exit status or None on timeout, seconds). The whole
    process group is ended on timeout or interruption."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w", encoding="utf-8", errors="replace") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        process = subprocess.Popen(command, cwd=SCRATCH, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(process)
            status = None
        except BaseException:
            stop(process)
            raise
    return status, time.monotonic() - start


def stop(process: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def build(flags: list[str], log: Path, timeout: float) -> tuple[bool, float]:
    status, seconds = run(["swift", "build", "--build-tests", "--skip-update", *flags], log, timeout)
    return status == 0, seconds


def first_error(log: Path) -> str:
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "error:" in line:
            return line.strip()[:200]
    return f"see {log.relative_to(ROOT)}"


def test(flags: list[str], filter_: str, log: Path, timeout: float) -> dict:
    """Runs the filter on the current build: {'outcome': failed|passed|timeout|no-tests|error, 'first_failure', 'executed', 'seconds'}."""
    command = ["swift", "test", "--skip-build", "--skip-update", *flags]
    if not uses_swift_testing():
        command.append("--disable-swift-testing")
    command += ["--filter", filter_]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    status, seconds = run(command, log, timeout, env)
    text = log.read_text(encoding="utf-8", errors="replace")
    failures = re.findall(r"Test Case '([^']+)' failed", text) or re.findall(r"error: (\w+\.\w+(?:/\w+)?) :", text)
    started = re.findall(r"Test Case '([^']+)' started", text)
    executed = max((int(n) for n in re.findall(r"Executed (\d+) tests?", text)), default=0)
    result = {"seconds": round(seconds, 1), "executed": executed, "first_failure": None}
    if status is None:
        result.update(outcome="timeout", first_failure=started[-1] if started else None)
    elif status != 0:
        if failures:
            result.update(outcome="failed", first_failure=failures[0])
        elif started:
            result.update(outcome="failed", first_failure=f"{started[-1]} (crashed, exit {status})")
        else:
            result.update(outcome="error", first_failure=first_error(log))
    elif executed == 0:
        result.update(outcome="no-tests")
    else:
        result.update(outcome="passed")
    return result


# MARK: - The run

def select(mutations: list[dict], only: str | None, module: str | None) -> list[dict]:
    chosen = mutations
    if only:
        wanted = [i.strip() for i in only.split(",") if i.strip()]
        unknown = [i for i in wanted if i not in {m.get("id") for m in mutations}]
        if unknown:
            sys.exit(f"mutate: no mutation {', '.join(unknown)} in {LIST.relative_to(ROOT)} (see --list)")
        chosen = [m for m in chosen if m.get("id") in wanted]
    if module:
        chosen = [m for m in chosen if m.get("module", "").lower() == module.lower()]
        if not chosen:
            sys.exit(f"mutate: no mutation in module {module} (modules: {', '.join(MODULES)})")
    return chosen


def print_list(mutations: list[dict]) -> None:
    width = max(len(m["id"]) for m in mutations)
    for m in mutations:
        print(f"{m['id']:<{width}}  {m['module']:<11}  {m['file']}  --filter {m['filter']}")
    counts = {name: sum(m["module"] == name for m in mutations) for name in MODULES}
    print(f"{len(mutations)} mutations: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))


def line(index: int, total: int, m: dict, status: str, seconds: float, detail: str | None, width: int) -> None:
    print(f"[{index:>2}/{total}] {m['id']:<{width}}  {m['module']:<11}  {status:<14} {seconds:7.1f} s  {detail or ''}".rstrip(), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Mutation testing: apply each mutation of Tools/mutate/mutations.json to a scratch "
                                                 "copy of the package, rebuild, run its test filter. See Tools/mutate/README.md.")
    parser.add_argument("--only", metavar="ID[,ID]", help="run only these mutations")
    parser.add_argument("--module", metavar="NAME", help=f"run only one module's mutations ({', '.join(MODULES)})")
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--check", action="store_true",
                        help="check the list against the working tree (each `find` once, filters naming existing test classes) and exit; builds nothing")
    parser.add_argument("--timeout", type=float, default=300, metavar="S", help="seconds per test run; a timeout counts as killed (default 300)")
    parser.add_argument("--build-timeout", type=float, default=3600, metavar="S", help="seconds per build (default 3600)")
    args = parser.parse_args()

    mutations = load_mutations()
    if args.check:
        problems = check_list(mutations, ROOT)
        for p in problems:
            print(p)
        print(f"{len(mutations)} mutations, {len(problems)} problems")
        return 1 if problems else 0
    chosen = select(mutations, args.only, args.module)
    if not chosen:
        sys.exit(f"mutate: {LIST.relative_to(ROOT)} holds no mutation")
    if args.list:
        print_list(chosen)
        return 0

    WORK.mkdir(parents=True, exist_ok=True)
    lock = open(WORK / "lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit("mutate: another run holds .build-mutate/lock")
    # A kill of the run still restores the mutated file (the finally blocks run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.monotonic()
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    flags = test_flags()
    shutil.rmtree(LOGS, ignore_errors=True)
    written = sync_scratch()
    print(f"mutate: {len(chosen)} mutations; scratch package .build-mutate/src ({written} files refreshed); flags: {' '.join(flags)}", flush=True)

    summary = {"started": stamp, "flags": flags, "timeout_s": args.timeout, "mutations": [], "baseline": {}}

    def finish(code: int) -> int:
        summary["seconds"] = round(time.monotonic() - started, 1)
        summary["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
        SUMMARY.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return code

    # Baseline: the unmutated package, every filter once.
    ok, seconds = build(flags, LOGS / "baseline.build.log", args.build_timeout)
    summary["baseline"]["build_seconds"] = round(seconds, 1)
    if not ok:
        print(f"mutate: the unmutated scratch package does not build ({first_error(LOGS / 'baseline.build.log')}); "
              f"log: .build-mutate/logs/baseline.build.log", flush=True)
        summary["baseline"]["build"] = "failed"
        return finish(2)
    print(f"baseline build {seconds:.1f} s", flush=True)
    baseline = {}
    for n, filter_ in enumerate(dict.fromkeys(m["filter"] for m in chosen)):
        result = test(flags, filter_, LOGS / f"baseline.test-{n}.log", args.timeout)
        baseline[filter_] = result
        if result["outcome"] != "passed":
            print(f"baseline: --filter {filter_}: {result['outcome']} {result['first_failure'] or ''}".rstrip(), flush=True)
    summary["baseline"]["filters"] = baseline
    print(f"baseline tests {sum(r['seconds'] for r in baseline.values()):.1f} s ({len(baseline)} filters)", flush=True)

    width = max(len(m["id"]) for m in chosen)
    records = summary["mutations"]
    for index, m in enumerate(chosen, 1):
        record = {k: m[k] for k in ("id", "module", "file", "filter")}
        records.append(record)
        t0 = time.monotonic()
        base = baseline[m["filter"]]
        path = SCRATCH / m["file"]
        original = path.read_bytes() if path.is_file() else None
        find, replace = m["find"].encode("utf-8"), m["replace"].encode("utf-8")
        count = original.count(find) if original is not None else 0
        if base["outcome"] != "passed":
            status = NO_TESTS if base["outcome"] == "no-tests" else BASELINE_FAILS
            record.update(status=status, detail=f"unmutated: {base['outcome']} {base['first_failure'] or ''}".rstrip())
        elif count != 1:
            record.update(status=STALE, detail=f"`find` occurs {count} times in {m['file']}" if original is not None else f"no file {m['file']}")
        else:
            build_log, test_log = LOGS / f"{m['id']}.build.log", LOGS / f"{m['id']}.test.log"
            try:
                path.write_bytes(original.replace(find, replace, 1))
                ok, build_seconds = build(flags, build_log, args.build_timeout)
                record["build_seconds"] = round(build_seconds, 1)
                if not ok:
                    record.update(status=UNCOMPILABLE, detail=first_error(build_log), log=str(build_log.relative_to(ROOT)))
                else:
                    result = test(flags, m["filter"], test_log, args.timeout)
                    record.update(test_seconds=result["seconds"], executed=result["executed"], log=str(test_log.relative_to(ROOT)))
                    if result["outcome"] == "failed":
                        record.update(status=KILLED, detail=result["first_failure"])
                    elif result["outcome"] == "timeout":
                        record.update(status=KILLED, detail=f"timeout after {args.timeout:.0f} s"
                                      + (f" in {result['first_failure']}" if result["first_failure"] else ""))
                    elif result["outcome"] == "passed":
                        record.update(status=SURVIVED, detail=f"{result['executed']} test{'s' if result['executed'] != 1 else ''} passed")
                    elif result["outcome"] == "no-tests":
                        record.update(status=NO_TESTS, detail="the filter ran no test")
                    else:
                        record.update(status=ERROR, detail=result["first_failure"])
            except BaseException:
                record.update(status="interrupted")
                raise
            finally:
                path.write_bytes(original)
                if record.get("status") == "interrupted":
                    finish(130)
        record["seconds"] = round(time.monotonic() - t0, 1)
        line(index, len(chosen), m, record["status"], record["seconds"], record.get("detail"), width)

    killed = sum(r["status"] == KILLED for r in records)
    summary.update(killed=killed, total=len(records))
    by_status = {}
    for r in records:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    print(f"killed {killed} of {len(records)}  (" + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) + ")"
          f"; {time.monotonic() - started:.0f} s; summary .build-mutate/last.json", flush=True)
    return finish(0 if killed == len(records) else 1)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("mutate: interrupted; the mutated file was restored", file=sys.stderr)
        sys.exit(130)
