"""The ``deepret`` command line.

- ``deepret demo``: the README's main job. The retrieval pipeline on the
  bundled Oxford5k descriptors: cosine vs diffusion ranking, mAP and mP@k,
  deepret's timings against the scipy-based reference practice; ``--plot``
  draws mAP against alpha and k.
- ``deepret rank``: diffusion ranking of your own .npy descriptors
  (see ``deepret rank --help``).
"""

from __future__ import annotations

import argparse
import sys


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad command line answered by one line on stderr (exit 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deepret", description="graph-based image retrieval: demo and ranking")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="cosine vs diffusion on the bundled Oxford5k data, timed against scipy",
        description="Rank the 55 Oxford5k queries by cosine similarity and by diffusion, print mAP, "
                    "mP@k and timings, and compare with the numpy/scipy reference practice.")
    demo.add_argument("--k", type=int, default=30, help="neighbours per node of the graph (default 30)")
    demo.add_argument("--alpha", type=float, default=0.9, help="diffusion alpha (default 0.9)")
    demo.add_argument("--plot", metavar="PNG", help="also draw mAP against alpha and k into this file "
                                                    "(needs matplotlib: pip install 'deepret[plot]')")
    demo.add_argument("--repeats", type=int, default=3, help="timed runs per step, median reported (default 3)")
    demo.add_argument("--no-reference", action="store_true", help="skip the scipy reference timings")
    demo.set_defaults(run=_run_demo)

    rank = commands.add_parser(
        "rank", help="diffusion ranking of your own .npy descriptors",
        description="Rank the database for each query by diffusion on the database's mutual kNN graph. "
                    "Inputs: .npy float32/float64 arrays, one descriptor per row; rows need not be "
                    "L2-normalized (they are normalized here: cosine similarity; an all-zero row is an "
                    "error). Output: an .npy (n_queries, topk) int64 array of database row ids, best "
                    "first, written only when complete. Any failure: one-line error, exit status 2 "
                    "(SIGTERM: 143, Ctrl-C: 130), and no output file.")
    rank.add_argument("--database", required=True, metavar="DB.npy", help="(n, d) database descriptors")
    rank.add_argument("--queries", required=True, metavar="Q.npy", help="(n_queries, d) query descriptors")
    rank.add_argument("--out", required=True, metavar="RANKS.npy",
                      help="output file: a new path or a regular file (replaced once complete)")
    rank.add_argument("--k", type=int, default=50, help="graph neighbours (default 50)")
    rank.add_argument("--alpha", type=float, default=0.99, help="diffusion alpha in (0, 1) (default 0.99)")
    rank.add_argument("--topk", type=int, default=100, help="ranked ids per query (default 100)")
    rank.add_argument("--gamma", type=float, default=3.0, help="affinity power in (0, 100] (default 3)")
    rank.add_argument("--query-k", type=int, default=10, help="database neighbours marked per query (default 10)")
    rank.add_argument("--maxiter", type=int, default=20, help="CG iterations at most, 1 to 100000 (default 20)")
    rank.add_argument("--gpu", action="store_true", help="run on the GPU (needs the CUDA engine and CuPy)")
    rank.set_defaults(run=_run_rank)
    return parser


def _run_demo(args) -> int:
    from . import _demo

    return _demo.run(args)


def _run_rank(args) -> int:
    from . import _rank

    return _rank.run(args)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
