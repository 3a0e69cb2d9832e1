"""The command line: `deepret demo` (the README's main job) on the bundled
Oxford5k data, and `deepret rank` on users' .npy files, with every bad input
answered by one line on stderr, exit status 2 and no output file."""

import os
import re
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import deepret
from deepret import cli, evaluate
from deepret.datasets import load_oxford5k

ROW = re.compile(r"^(?P<label>\S.*?)\s+(?P<map>\d+\.\d)\s+(\d+\.\d)\s+(\d+\.\d)\s+(\d+\.\d)\s", re.M)


def _rows(printed: str) -> dict:
    return {m.group("label").strip(): float(m.group("map")) for m in ROW.finditer(printed)}


def test_demo_table_diffusion_beats_cosine_and_matches_the_reference(capsys):
    assert cli.main(["demo", "--repeats", "1"]) == 0
    rows = _rows(capsys.readouterr().out)
    cosine = rows["cosine similarity (deepret.knn)"]
    diffusion = rows["diffusion k=30 alpha=0.9 (deepret)"]
    assert cosine == 40.3  # the cosine mAP of the bundled descriptors (docs/guides/pipeline.md)
    assert diffusion > cosine
    assert rows["cosine similarity (numpy matmul + argsort)"] == cosine
    # the scipy pipeline builds the same graph and solves the same systems
    assert abs(rows["diffusion k=30 alpha=0.9 (scipy cg loop)"] - diffusion) <= 0.1
    assert "diffusion k=50 alpha=0.99 (paper defaults)" in rows


def test_demo_map_agrees_with_diffusion_index():
    data = load_oxford5k()
    x = data.descriptors / np.linalg.norm(data.descriptors, axis=1, keepdims=True)
    _, ids = deepret.DiffusionIndex(x, k=30, alpha=0.9).search(x[data.query_indices], topk=len(x))
    printed = subprocess.run([sys.executable, "-m", "deepret", "demo", "--repeats", "1", "--no-reference"],
                             capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    expected = round(100 * evaluate.compute_map(ids.T, data.gnd).map, 1)
    assert _rows(printed.stdout)["diffusion k=30 alpha=0.9 (deepret)"] == expected
    # stderr is a pipe, not a terminal: no progress bars, one line per step
    assert "\r" not in printed.stderr and "it/s" not in printed.stderr
    assert printed.stderr.splitlines() == [
        f"deepret demo: step {i}/4 done: {name}" for i, name in
        enumerate(["cosine ranking", "kNN graph", "diffusion", "diffusion, paper defaults"], 1)]


def test_demo_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "map.png"
    assert cli.main(["demo", "--repeats", "1", "--no-reference", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_plot_without_matplotlib(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["demo", "--plot", str(tmp_path / "x.png")]) == 2
    assert "pip install 'deepret[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv", [["--k", "0"], ["--alpha", "1"], ["--repeats", "0"]])
def test_demo_bad_arguments(argv, capsys):
    assert cli.main(["demo", *argv]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_unknown_command_exits_with_one_line():
    result = subprocess.run([sys.executable, "-m", "deepret", "nonsense"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "invalid choice: 'nonsense'" in result.stderr
    assert "deepret --help" in result.stderr


# --- deepret rank ---------------------------------------------------------------------------

@pytest.fixture
def oxford_files(tmp_path):
    data = load_oxford5k()
    db, queries = tmp_path / "db.npy", tmp_path / "q.npy"
    np.save(db, data.descriptors)  # as shipped: not L2-normalized
    np.save(queries, data.descriptors[data.query_indices])
    return db, queries, data


def _rank(*argv):
    return subprocess.run([sys.executable, "-m", "deepret", "rank", *map(str, argv)],
                          capture_output=True, text=True, timeout=300)


def _rank_in_process(capsys, *argv):
    """(exit status, stderr) of cli.main in this process: what `deepret rank`
    prints and returns, without starting an interpreter per case (a FIFO or
    device input still goes through _rank, in a process of its own)."""
    capsys.readouterr()
    try:
        status = cli.main(["rank", *map(str, argv)])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    return status, capsys.readouterr().err


def test_rank_matches_diffusion_index(oxford_files, tmp_path):
    db, queries, data = oxford_files
    out = tmp_path / "ranks.npy"
    result = _rank("--database", db, "--queries", queries, "--out", out, "--k", 30, "--alpha", 0.9,
                   "--topk", 200)
    assert result.returncode == 0, result.stderr
    ranks = np.load(out)
    assert ranks.shape == (55, 200) and ranks.dtype == np.int64
    x = data.descriptors / np.linalg.norm(data.descriptors, axis=1, keepdims=True)
    _, expected = deepret.DiffusionIndex(x, k=30, alpha=0.9).search(x[data.query_indices], topk=200)
    np.testing.assert_array_equal(ranks, expected)
    assert evaluate.compute_map(ranks, data.gnd, layout="query_by_db").map > 0.41  # top-200 only
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".deepret")] == []


def test_rank_in_process_with_float64_and_output_without_npy_suffix(tmp_path, capsys):
    rng = np.random.default_rng(0)
    db, q, out = tmp_path / "db.npy", tmp_path / "q.npy", tmp_path / "ranks.bin"
    np.save(db, rng.standard_normal((300, 8)))
    np.save(q, rng.standard_normal((7, 8)))
    assert cli.main(["rank", "--database", str(db), "--queries", str(q), "--out", str(out),
                     "--k", "10", "--topk", "5"]) == 0
    ranks = np.load(out)  # the exact path asked for: numpy adds no suffix
    assert ranks.shape == (7, 5) and len(set(ranks[0])) == 5


def _write(path, array):
    np.save(path, array)
    return path


def _write_bytes(path, content: bytes):
    path.write_bytes(content)
    return path


def _write_npz(path):
    np.savez(path, a=np.ones((3, 128), np.float32))
    return path


def _write_object(path):
    np.save(path, np.array([[None, 1]], dtype=object), allow_pickle=True)
    return path


def _fifo(path):
    os.mkfifo(path)
    return path


BAD_INPUTS = {
    "missing database": (lambda t, db, q: ["--database", t / "nope.npy", "--queries", q], "not found"),
    "empty file": (lambda t, db, q: ["--database", _write_bytes(t / "e.npy", b""),
                                     "--queries", q], "empty"),
    "not npy": (lambda t, db, q: ["--database", _write_bytes(t / "x.npy", b"hello"),
                                  "--queries", q], "is not a .npy file"),
    "random bytes": (lambda t, db, q: ["--database", _write_bytes(t / "r.npy", bytes(range(256)) * 8),
                                       "--queries", q], "is not a .npy file"),
    "truncated": (lambda t, db, q: ["--database", _write_bytes(t / "t.npy", (t / "q.npy").read_bytes()[:-100]),
                                    "--queries", q], "is truncated"),
    "npz": (lambda t, db, q: ["--database", _write_npz(t / "a.npz"), "--queries", q], ".npz (zip) archive"),
    "object array": (lambda t, db, q: ["--database", _write_object(t / "o.npy"), "--queries", q],
                     "Python objects"),
    "directory input": (lambda t, db, q: ["--database", t, "--queries", q], "is a directory"),
    "fifo input": (lambda t, db, q: ["--database", _fifo(t / "in.fifo"), "--queries", q],
                   "must be a regular .npy file, got a FIFO"),
    "device input": (lambda t, db, q: ["--database", "/dev/zero", "--queries", q],
                     "must be a regular .npy file, got a character device"),
    "gamma huge": (lambda t, db, q: ["--database", db, "--queries", q, "--gamma", "1e308"], "--gamma must be in (0, 100]"),
    "gamma nan": (lambda t, db, q: ["--database", db, "--queries", q, "--gamma", "nan"], "--gamma"),
    "gamma zero": (lambda t, db, q: ["--database", db, "--queries", q, "--gamma", "0"], "--gamma"),
    "alpha nan": (lambda t, db, q: ["--database", db, "--queries", q, "--alpha", "nan"], "--alpha"),
    "maxiter huge": (lambda t, db, q: ["--database", db, "--queries", q, "--maxiter", 10**30], "--maxiter"),
    "k not an int": (lambda t, db, q: ["--database", db, "--queries", q, "--k", "ten"], "invalid int value"),
    "query-k zero": (lambda t, db, q: ["--database", db, "--queries", q, "--query-k", 0], "--query-k"),
    "dimension mismatch": (lambda t, db, q: ["--database", db, "--queries",
                                             _write(t / "q5.npy", np.ones((3, 5), np.float32))], "d = 5"),
    "nan": (lambda t, db, q: ["--database", db, "--queries",
                              _write(t / "qn.npy", np.full((2, 128), np.nan, np.float32))], "NaN"),
    "int dtype": (lambda t, db, q: ["--database", _write(t / "i.npy", np.ones((10, 128), np.int64)),
                                    "--queries", q], "float32 or float64"),
    "one-dimensional": (lambda t, db, q: ["--database", db, "--queries",
                                          _write(t / "q1.npy", np.ones(128, np.float32))], "2-D"),
    "no rows": (lambda t, db, q: ["--database", db, "--queries",
                                  _write(t / "q0.npy", np.ones((0, 128), np.float32))], "no data"),
    "zero row": (lambda t, db, q: ["--database", db, "--queries",
                                   _write(t / "qz.npy", np.zeros((2, 128), np.float32))], "all zeros"),
    "k too large": (lambda t, db, q: ["--database", db, "--queries", q, "--k", 6000], "--k"),
    "topk too large": (lambda t, db, q: ["--database", db, "--queries", q, "--topk", 6000], "--topk"),
    "alpha": (lambda t, db, q: ["--database", db, "--queries", q, "--alpha", 1.5], "--alpha"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_rank_bad_input(case, oxford_files, tmp_path, capsys):
    db, queries, _ = oxford_files
    make, message = BAD_INPUTS[case]
    out = tmp_path / "out" / "ranks.npy"
    out.parent.mkdir()
    argv = [*make(tmp_path, db, queries), "--out", out]
    if "fifo" in case or "device" in case:
        result = _rank(*argv)
        status, stderr = result.returncode, result.stderr
    else:
        status, stderr = _rank_in_process(capsys, *argv)
    assert status == 2
    assert stderr.count("\n") == 1 and stderr.startswith("deepret rank: error:")
    assert message in stderr
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("special", ["fifo", "/dev/null", "link to /dev/null"])
def test_rank_refuses_a_special_out(special, oxford_files, tmp_path):
    db, queries, _ = oxford_files
    if special == "fifo":
        target = _fifo(tmp_path / "out.fifo")
    elif special == "/dev/null":
        target = "/dev/null"  # refused before anything is written: /dev/null stays a device
    else:
        target = tmp_path / "null.npy"
        os.symlink("/dev/null", target)
    result = _rank("--database", db, "--queries", queries, "--out", target)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--out must be a regular file or a new path" in result.stderr
    assert ("a FIFO" if special == "fifo" else "a character device") in result.stderr
    mode = os.stat(target).st_mode
    assert stat.S_ISFIFO(mode) if special == "fifo" else stat.S_ISCHR(mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".deepret")] == []


def test_rank_write_failure_mid_save_is_one_line(oxford_files, tmp_path):
    import resource

    db, queries, _ = oxford_files
    out = tmp_path / "ranks.npy"
    limit = 20_000  # the (55, 200) int64 ranks need 88 kB

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "deepret", "rank", "--database", str(db), "--queries",
                             str(queries), "--out", str(out), "--topk", "200", "--k", "30"],
                            capture_output=True, text=True, timeout=300, preexec_fn=small_files)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("deepret rank: error: cannot write --out") and "File too large" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.npy", "q.npy"]


def test_rank_sigterm_removes_the_temporary_file(tmp_path):
    # Many short engine calls (64 batches of queries, a few seconds in all, so
    # that a loaded machine still signals before the end): Python runs the
    # SIGTERM handler between them (stopping inside one engine call is the
    # parallel runtime's cancellation, tested with it).
    rng = np.random.default_rng(0)
    db, q, out = tmp_path / "db.npy", tmp_path / "q.npy", tmp_path / "ranks.npy"
    np.save(db, rng.standard_normal((5000, 32)).astype(np.float32))
    np.save(q, rng.standard_normal((16384, 32)).astype(np.float32))
    process = subprocess.Popen([sys.executable, "-m", "deepret", "rank", "--database", str(db), "--queries",
                                str(q), "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(".deepret-rank-") for p in tmp_path.iterdir()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1] == "deepret rank: terminated (SIGTERM); no output written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.npy", "q.npy"]


@pytest.mark.parametrize("where", ["missing directory", "a directory", "no file creation allowed"])
def test_rank_unwritable_output(where, oxford_files, tmp_path):
    db, queries, _ = oxford_files
    # /proc refuses new files even to root (a chmod-ed directory would not stop root)
    target = {"missing directory": tmp_path / "nowhere" / "r.npy", "a directory": tmp_path,
              "no file creation allowed": "/proc/deepret-ranks.npy"}[where]
    result = _rank("--database", db, "--queries", queries, "--out", target)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--out" in result.stderr
    assert not os.path.isfile(target)


def test_rank_failure_during_the_run_leaves_no_file(oxford_files, tmp_path, monkeypatch, capsys):
    from deepret import _rank as rank_module

    db, queries, _ = oxford_files
    out = tmp_path / "ranks.npy"

    def fail(*args):
        raise ValueError("simulated failure inside the engine")

    monkeypatch.setattr(rank_module, "_rank", fail)
    assert cli.main(["rank", "--database", str(db), "--queries", str(queries), "--out", str(out)]) == 2
    assert "simulated failure" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.npy", "q.npy"]


def test_rank_gpu_without_a_gpu(oxford_files, tmp_path):
    if deepret.has_cuda():
        pytest.skip("a GPU is visible: --gpu runs (covered by the GPU tests)")
    db, queries, _ = oxford_files
    out = tmp_path / "r.npy"
    result = _rank("--database", db, "--queries", queries, "--out", out, "--gpu")
    assert result.returncode == 2 and "--gpu" in result.stderr and not out.exists()


@pytest.mark.gpu
def test_rank_gpu_matches_cpu(oxford_files, tmp_path):
    if not deepret.has_cuda():
        pytest.skip("needs a GPU and the CUDA engine")
    pytest.importorskip("cupy")
    db, queries, _ = oxford_files
    cpu, gpu = tmp_path / "cpu.npy", tmp_path / "gpu.npy"
    for out, extra in ((cpu, []), (gpu, ["--gpu"])):
        assert _rank("--database", db, "--queries", queries, "--out", out, "--topk", 20, *extra).returncode == 0
    agree = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(np.load(cpu), np.load(gpu))])
    assert agree > 0.95
