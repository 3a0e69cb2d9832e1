"""Clutter benchmark: small real objects pasted into real background photos.

No instance-retrieval image set is reachable offline, so this builds one from
photographs that install offline (issue 11, "The benchmark"):

- photos: Debian wallpaper packages (the files listed in PHOTOS, chosen by eye
  as photographs, renders left out) and scikit-image's bundled photos. Fetch
  the packages without installing them::

      mkdir -p /tmp/debs && cd /tmp/debs && apt-get download ukui-wallpapers \\
          mate-backgrounds plasma-workspace-wallpapers
      for f in *.deb; do dpkg -x "$f" /tmp/clutter_photos_raw; done

- the photos are split in two disjoint sets: OBJECT photos give the instances
  (non-overlapping cells of a grid over each photo, so crops of one photo are
  as different as they can be), BACKGROUND photos give the clutter. Disjoint,
  because a background crop must never contain an instance by accident.
- every instance is pasted into ``--per-instance`` composites, each over a
  different background photo (random crop, flip), at 2-10 % of the image area
  (random position, scale, flip); the first composite is the query, the others
  are its positives in the database. ``--distractors`` background-only
  composites are added to the database.

Output (``--out``, default bench/clutter/cache, gitignored): images/NNNNN.jpg
(512x384) and ground truth bench/clutter/ground_truth.json (small, committed):
database and query files, instance and background photo of each image, the
true object box (y0, x0, y1, x1) in pixels, and gnd (positives per query) for
deepret.evaluate.compute_map. Seeded: the same arguments give the same set.

    python bench/clutter/make_dataset.py --photo-root /tmp/clutter_photos_raw
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from skimage import data as skdata, io, transform

HERE = os.path.dirname(os.path.abspath(__file__))
W, H = 512, 384  # composites: ~16x12 cells at EfficientNet stride 32

B = "usr/share/backgrounds/"
P = "usr/share/wallpapers/"
OBJECT_PHOTOS = [
    B + "Dragonfly_by_Bolly.jpg", B + "Kleiber_by_Lukas_Baubkus.jpg", B + "free_by_Peter_Nerlich.jpg",
    B + "Wine_by_Jakkub_Mede.jpg", B + "Picture_0B_by_freespace.jpg", B + "Picture_1A_by_freespace.jpg",
    B + "seeding_by_Clements_Engelhardt.jpg", B + "mate/nature/LadyBird.jpg", B + "mate/nature/FreshFlower.jpg",
    B + "mate/nature/YellowFlower.jpg", B + "mate/nature/TwoWings.jpg", B + "mate/nature/Aqua.jpg",
    P + "ColorfulCups/contents/images/2560x1600.jpg", P + "FallenLeaf/contents/images/2560x1600.jpg",
    P + "OneStandsOut/contents/images/2560x1600.jpg",
    "skimage:coffee", "skimage:chelsea", "skimage:rocket", "skimage:astronaut", "skimage:motorcycle",
]
BACKGROUND_PHOTOS = [
    B + "Bridge_by_Sander_Klootwijk.jpg", B + "aitzgorri_by_Aitzol_Berasategi.jpg",
    B + "friends_by_Aitzol_Berasategi.jpg", B + "greentock_by_Peter_Nerlich.jpg",
    B + "life_by_Aitzol_Berasategi.jpg", B + "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    B + "sunset_by_Aitzol_Berasategi.jpg", B + "mate/nature/Garden.jpg", B + "mate/nature/GreenMeadow.jpg",
    B + "mate/nature/Dune.jpg", B + "mate/nature/Storm.jpg", B + "mate/nature/Wood.jpg",
    B + "mate/nature/RainDrops.jpg", B + "mate/nature/Blinds.jpg",
    P + "Autumn/contents/images/2560x1600.jpg", P + "BytheWater/contents/images/2560x1600.jpg",
    P + "ColdRipple/contents/images/2560x1600.jpg", P + "DarkestHour/contents/images/2560x1600.jpg",
    P + "EveningGlow/contents/images/2560x1600.jpg", P + "Path/contents/images/2560x1600.jpg",
    P + "summer_1am/contents/images/2560x1600.jpg", P + "Kite/contents/images/2560x1600.jpg",
]


def load_photo(name, root, long_side=1024):
    """float32 RGB in [0, 1], downscaled to ``long_side`` (or None if absent)."""
    if name.startswith("skimage:"):
        key = name.split(":")[1]
        im = skdata.stereo_motorcycle()[0] if key == "motorcycle" else getattr(skdata, key)()
    else:
        path = os.path.join(root, name)
        if not os.path.exists(path):
            return None
        im = io.imread(path)
    im = np.asarray(im)[..., :3].astype(np.float32) / 255.0
    s = long_side / max(im.shape[:2])
    if s < 1:
        im = transform.rescale(im, s, channel_axis=2, anti_aliasing=True).astype(np.float32)
    return im


def object_crops(photo, n, rng):
    """n crops from distinct cells of a 3x2 grid (jittered, 60-90 % of a cell)."""
    h, w = photo.shape[:2]
    cells = [(r, c) for r in range(2) for c in range(3)]
    rng.shuffle(cells)
    out = []
    for r, c in cells[:n]:
        ch, cw = h // 2, w // 3
        fh, fw = rng.uniform(0.6, 0.9, 2)
        hh, ww = int(ch * fh), int(cw * fw)
        y0 = r * ch + rng.integers(0, ch - hh + 1)
        x0 = c * cw + rng.integers(0, cw - ww + 1)
        out.append((photo[y0:y0 + hh, x0:x0 + ww], (int(y0), int(x0), int(y0 + hh), int(x0 + ww))))
    return out


def background(photo, rng):
    """A random 4:3 crop (35-85 % of the largest one) with a random flip, at W x H."""
    h, w = photo.shape[:2]
    ch = min(h, int(w * H / W))
    s = rng.uniform(0.35, 0.85)
    hh, ww = int(ch * s), int(ch * s * W / H)
    y0, x0 = rng.integers(0, h - hh + 1), rng.integers(0, w - ww + 1)
    im = transform.resize(photo[y0:y0 + hh, x0:x0 + ww], (H, W), anti_aliasing=True)
    return (im[:, ::-1] if rng.random() < 0.5 else im), (int(y0), int(x0), int(y0 + hh), int(x0 + ww))


def paste(bg, obj, rng, area=(0.02, 0.10)):
    """Paste obj into bg at a random area fraction, position and flip; returns the box."""
    frac = rng.uniform(*area)
    oh, ow = obj.shape[:2]
    s = np.sqrt(frac * H * W / (oh * ow))
    nh, nw = max(8, min(H, int(round(oh * s)))), max(8, min(W, int(round(ow * s))))
    o = transform.resize(obj, (nh, nw), anti_aliasing=True)
    if rng.random() < 0.5:
        o = o[:, ::-1]
    y0, x0 = int(rng.integers(0, H - nh + 1)), int(rng.integers(0, W - nw + 1))
    out = bg.copy()
    out[y0:y0 + nh, x0:x0 + nw] = o
    return out, (y0, x0, y0 + nh, x0 + nw)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo-root", default="/tmp/clutter_photos_raw")
    ap.add_argument("--out", default=os.path.join(HERE, "cache"))
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--per-instance", type=int, default=10, help="composites per instance (1 query + positives)")
    ap.add_argument("--distractors", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--area", type=float, nargs=2, default=(0.02, 0.10), help="object area fraction range")
    ap.add_argument("--gt", default=os.path.join(HERE, "ground_truth.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    objs = [(n, p) for n in OBJECT_PHOTOS if (p := load_photo(n, args.photo_root)) is not None]
    bgs = [(n, p) for n in BACKGROUND_PHOTOS if (p := load_photo(n, args.photo_root)) is not None]
    if len(bgs) < args.per_instance:
        raise SystemExit(f"need at least {args.per_instance} background photos, found {len(bgs)}")
    per_photo = -(-args.instances // len(objs))
    if per_photo > 6:
        raise SystemExit(f"{args.instances} instances need {per_photo} crops per object photo (max 6)")
    instances = []  # (object photo index, crop, box in the photo)
    for i, (_, photo) in enumerate(objs):
        instances += [(i, c, b) for c, b in object_crops(photo, per_photo, rng)]
    order = rng.permutation(len(instances))[: args.instances]
    instances = [instances[j] for j in sorted(order)]

    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)
    records = []

    def emit(im, rec):
        rec["file"] = f"images/{len(records):05d}.jpg"
        io.imsave(os.path.join(args.out, rec["file"]), (np.clip(im, 0, 1) * 255).astype(np.uint8),
                  quality=92, check_contrast=False)
        records.append(rec)

    # Each instance over per_instance *different* background photos, chosen so
    # that every background photo is used about equally often.
    for inst, (src, crop, src_box) in enumerate(instances):
        for b in rng.choice(len(bgs), args.per_instance, replace=False):
            bg, bg_box = background(bgs[b][1], rng)
            im, box = paste(bg, crop, rng, tuple(args.area))
            emit(im, {"instance": inst, "object_photo": src, "object_crop": src_box,
                      "background": int(b), "background_crop": bg_box, "box": box})
    for _ in range(args.distractors):
        b = int(rng.integers(len(bgs)))
        bg, bg_box = background(bgs[b][1], rng)
        emit(bg, {"instance": -1, "background": b, "background_crop": bg_box})

    # The first composite of each instance is its query; the rest are database.
    queries, database = [], []
    seen = set()
    for r in records:
        (database if r["instance"] < 0 or r["instance"] in seen else queries).append(r)
        seen.add(r["instance"])
    db_of = {}
    for d, r in enumerate(database):
        db_of.setdefault(r["instance"], []).append(d)
    gnd = [{"ok": db_of[q["instance"]], "junk": []} for q in queries]
    gt = {"params": vars(args) | {"width": W, "height": H, "area": list(args.area)},
          "object_photos": [n for n, _ in objs], "background_photos": [n for n, _ in bgs],
          "database": database, "queries": queries, "gnd": gnd}
    with open(args.gt, "w") as f:
        json.dump(gt, f, separators=(",", ":"))
    print(f"{len(objs)} object photos, {len(bgs)} background photos, {len(instances)} instances; "
          f"{len(database)} database images, {len(queries)} queries -> {args.out}")


if __name__ == "__main__":
    main()
