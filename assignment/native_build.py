"""Build the optional C half of :mod:`assignment.hashing` in place (``make setup`` runs this).

::

    .venv/bin/python -m assignment.native_build          # build if missing or out of date
    .venv/bin/python -m assignment.native_build --force  # rebuild
    .venv/bin/python -m assignment.native_build --clean  # remove it: the pure-Python path is used

Compiles ``assignment/_native_hash.c`` with the C compiler Python was built with (``CC``, else
``cc``) against Python's own headers, into ``assignment/_native_hash<EXT_SUFFIX>``; nothing else is
needed (no setuptools, cffi or Cython). The module is checked against the pure-Python hashes
before it is put in place. A missing compiler or a failed build prints one warning line and exits 0:
:mod:`assignment.hashing` then keeps its pure-Python functions, which give identical results.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

__all__ = ["build_native", "native_path"]

SOURCE = Path(__file__).resolve().parent / "_native_hash.c"
MODULE = "_native_hash"


def native_path() -> Path:
    """Where the built module lives (next to its source, with this interpreter's suffix)."""
    return SOURCE.with_name(MODULE + str(sysconfig.get_config_var("EXT_SUFFIX") or ".so"))


def _compiler() -> list[str] | None:
    configured = shlex.split(os.environ.get("CC") or str(sysconfig.get_config_var("CC") or ""))
    for candidate in (configured, ["cc"], ["gcc"]):
        if candidate and shutil.which(candidate[0]):
            return candidate
    return None


def _agrees_with_pure(path: Path) -> str | None:
    """None when the module at ``path`` gives the pure-Python hashes on a few tricky strings."""
    spec = importlib.util.spec_from_file_location(f"assignment.{MODULE}", path)
    if spec is None or spec.loader is None:
        return "cannot be loaded"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from assignment import hashing

    samples = ["", "a", "user-0000001", "é", "日本語", "😀x", "\ud800", "x" * 100, "123", "seed"]
    for value in samples:
        for seed in ("", "checkout", "ü-seed"):
            if module.fnv1a32_extend(hashing.FNV_OFFSET, seed + value) != hashing.pure_fnv1a32_extend(
                hashing.FNV_OFFSET, seed + value
            ):
                return f"fnv1a32 differs on {seed + value!r}"
            for version, native in ((1, module.hash_v1), (2, module.hash_v2)):
                if native(seed, value) != hashing.pure_gbhash(seed, value, version):
                    return f"hash v{version} differs on seed {seed!r}, value {value!r}"
    return None


def build_native(force: bool = False) -> tuple[bool, str]:
    """Build the module; ``(True, message)`` when it is in place and agrees with the pure path."""
    target = native_path()
    if not force and target.exists() and target.stat().st_mtime >= SOURCE.stat().st_mtime:
        return True, ""
    compiler = _compiler()
    if compiler is None:
        return False, "no C compiler (cc/gcc) found"
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        return False, f"Python's headers are missing ({include}/Python.h)"
    with tempfile.TemporaryDirectory(prefix="xp-native-") as tmp:
        built = Path(tmp) / target.name
        command = [
            *compiler,
            "-O2",
            "-fPIC",
            "-shared",
            "-fno-strict-aliasing",
            f"-I{include}",
            str(SOURCE),
            "-o",
            str(built),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            return False, f"compiling failed: {detail[0] if detail else result.returncode}"
        try:
            problem = _agrees_with_pure(built)
        except (ImportError, OSError) as error:
            problem = f"cannot be loaded ({error})"
        if problem is not None:
            return False, f"the built module {problem}"
        staged = target.with_suffix(target.suffix + ".tmp")
        shutil.copyfile(built, staged)
        staged.replace(target)
    return True, f"built {target.relative_to(SOURCE.parent.parent)}"


def clean_native() -> bool:
    """Remove the built module; True when there was one."""
    target = native_path()
    if target.exists():
        target.unlink()
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--clean", action="store_true", help="remove the built module")
    args = parser.parse_args(argv)
    if args.clean:
        print("removed" if clean_native() else "nothing to remove", native_path().name)
        return 0
    ok, message = build_native(force=args.force)
    if ok:
        if message:  # silent when already up to date (make setup runs this every time)
            print(f"native hashing: {message}")
    else:
        print(f"warning: native hashing not built ({message}); using the pure-Python path", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
