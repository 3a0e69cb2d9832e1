"""Checks a built deepret wheel: the extension modules it must (and must not)
hold, and that each exports its Python init function and nothing else.

    python .ci/check_wheel.py WHEEL --cuda yes|no
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--cuda", choices=("yes", "no"), required=True,
                        help="whether the wheel must hold _core_cuda")
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as archive, tempfile.TemporaryDirectory() as tmp:
        names = archive.namelist()
        modules = [n for n in names if n.startswith("deepret/_core") and n.endswith(".so")]
        expected = {"_core"} | ({"_core_cuda"} if args.cuda == "yes" else set())
        found = {Path(n).name.split(".")[0] for n in modules}
        if found != expected:
            print(f"{args.wheel.name}: extension modules {sorted(found)}, expected {sorted(expected)}")
            return 1
        for name in modules:
            path = archive.extract(name, tmp)
            exported = subprocess.run(["nm", "-D", "--defined-only", path], check=True,
                                      capture_output=True, text=True).stdout.split()
            symbols = sorted(set(exported[2::3]))
            init = "PyInit_" + Path(name).name.split(".")[0]
            if symbols != [init]:
                print(f"{name} exports {len(symbols)} symbols, expected only {init}: {symbols[:20]}")
                return 1
            print(f"{name}: exports only {init}")
        bundled = [n for n in names if ".libs/" in n]
        print(f"{args.wheel.name}: {len(modules)} extension modules; bundled libraries: {bundled or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
