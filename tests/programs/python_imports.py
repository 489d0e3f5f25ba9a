# Imports every module of CPython's standard library (sys.stdlib_module_names) and
# prints, one line each, "ok" or the exception's type and message: run natively and
# inside the sandbox, the two tables must be equal. Modules that act on import
# (antigravity opens a browser; this and __hello__ print) are listed as skipped.
# Each import runs in the same interpreter, with stdout and stderr silenced, in
# name order, so the result is deterministic.
import io
import os
import sys
import contextlib

SKIP = {"antigravity", "this", "__hello__", "__phello__"}

results = []
for name in sorted(sys.stdlib_module_names):
    if name in SKIP:
        results.append((name, "skipped"))
        continue
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            __import__(name)
        results.append((name, "ok"))
    except BaseException as e:  # SystemExit and the like count as failures too
        msg = str(e).replace(os.getcwd(), "{dir}").splitlines()
        results.append((name, f"{type(e).__name__}: {msg[0] if msg else ''}"))

ok = sum(1 for _, r in results if r == "ok")
print(f"python {sys.version_info.major}.{sys.version_info.minor}: "
      f"{len(results)} modules, {ok} import")
for name, r in results:
    print(f"{name}: {r}")
