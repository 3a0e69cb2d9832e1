"""Source rules of the CUDA engine, enforced by reading csrc/ (no GPU or
nvcc needed):

- no cudaMalloc/cudaFree (sync or async) anywhere in the engine: device
  scratch comes from the caller's pool (common/device.h's Scratch), so a
  call never fails for memory a pool holds cached and never synchronizes
  the device to free;
- no floating-point atomicAdd: reductions whose result the CPU engine
  computes deterministically are summed in a fixed order on the GPU too.
  An atomicAdd may only add an integer literal (a counter or a slot).
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted(p for p in (ROOT / "csrc").rglob("*") if p.suffix in {".cu", ".cuh", ".h", ".inc", ".cpp"})

pytestmark = pytest.mark.skipif(not SOURCES, reason="csrc/ is not in this checkout (an installed wheel)")


def _code(path):
    """The file without its comments (a rule may be named in a comment)."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _lines(pattern):
    found = []
    for path in SOURCES:
        for number, line in enumerate(_code(path).splitlines(), 1):
            if re.search(pattern, line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_there_are_cuda_sources():
    assert any(p.suffix == ".cu" for p in SOURCES)


def test_no_device_allocation_in_the_engine():
    assert _lines(r"\bcuda(Malloc|Free)\w*\s*\(") == []


def test_atomic_adds_only_count():
    calls = []
    for path in SOURCES:
        code = _code(path)
        for match in re.finditer(r"\batomicAdd\s*\(", code):
            # The call's arguments up to its closing parenthesis.
            depth, i = 1, match.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(code[i], 0)
                i += 1
            arguments = code[match.end():i - 1]
            addend = arguments.rsplit(",", 1)[-1].strip()
            calls.append((f"{path.relative_to(ROOT)}: atomicAdd({arguments})", addend))
    assert calls, "expected the integer counters of the graph and kNN kernels"
    floating = [call for call, addend in calls if not re.fullmatch(r"\d+(u|ull|ll|l)?", addend, flags=re.I)]
    assert floating == []
