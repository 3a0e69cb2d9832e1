"""Clutter benchmark: small real objects pasted into real background photos.

No instance-retrieval image set is reachable offline, so this builds one from
photographs that install offline (issue 11, "The benchmark"):

- photos (issue 11 wants as many distinct photographs as possible, so that no
  background photo recurs more often than an instance does): the files listed
  below, chosen by eye as photographs (renders, drawings, paintings, charts
  and calibration shots left out) from Debian bookworm packages and
  scikit-image's bundled photos. Fetch the packages without installing them::

      mkdir -p /tmp/debs && cd /tmp/debs && apt-get download lomiri-wallpapers ukui-wallpapers \\
          mate-backgrounds plasma-workspace-wallpapers gcompris-qt-data \\
          palapeli-data opencv-doc
      for f in *.deb; do dpkg -x "$f" /tmp/clutter_photos_raw; done

  gcompris-qt-data (3.1-2) keeps its photos inside Qt resource files;
  ``gcompris:ACTIVITY@OFFSET`` names the WebP/JPEG stream that starts at byte
  OFFSET of usr/share/gcompris-qt/rcc/ACTIVITY.rcc (read in place, nothing
  to unpack).
- the photos are split in two disjoint sets: OBJECT photos give the instances
  (one central crop of a photo, or its two halves when there are more
  instances than object photos, so crops of one photo are as different as
  they can be), BACKGROUND photos give the clutter. Disjoint, because a
  background crop must never contain an instance by accident.
- every instance is pasted into ``--per-instance`` composites, each over a
  different background photo, at 2-10 % of the image area (random position,
  scale, flip); the first composite is the query, the others are its
  positives in the database. ``--distractors`` background-only composites are
  added to the database. Background photos are drawn least-used first, so
  each recurs about (composites + distractors) / photos times, and the crops
  of one photo sit on distinct cells of a 3x3 grid of positions (random
  scale, flip), so they overlap as little as the photo's size allows.

Output (``--out``, default bench/clutter/cache, gitignored): images/NNNNN.jpg
(``--size``, default 512x384; photos are first downscaled to a long side of
twice the composite width, at least 1024) and ground truth bench/clutter/ground_truth.json (small, committed):
database and query files, instance and background photo of each image, the
true object box (y0, x0, y1, x1) in pixels, and gnd (positives per query) for
deepret.evaluate.compute_map. Seeded: the same arguments give the same set.

    python bench/clutter/make_dataset.py --photo-root /tmp/clutter_photos_raw
"""

from __future__ import annotations

import argparse
import json
import os

from io import BytesIO

import numpy as np
from PIL import Image
from skimage import data as skdata, io, transform

HERE = os.path.dirname(os.path.abspath(__file__))
W, H = 512, 384  # composites (--size): 16x12 cells at EfficientNet stride 32

B = "usr/share/backgrounds/"
P = "usr/share/wallpapers/"
OBJECT_PHOTOS_WALLPAPERS = [
    B + "Dragonfly_by_Bolly.jpg", B + "Kleiber_by_Lukas_Baubkus.jpg", B + "free_by_Peter_Nerlich.jpg",
    B + "Wine_by_Jakkub_Mede.jpg", B + "Picture_0B_by_freespace.jpg", B + "Picture_1A_by_freespace.jpg",
    B + "seeding_by_Clements_Engelhardt.jpg", B + "mate/nature/LadyBird.jpg", B + "mate/nature/FreshFlower.jpg",
    B + "mate/nature/YellowFlower.jpg", B + "mate/nature/TwoWings.jpg", B + "mate/nature/Aqua.jpg",
    P + "ColorfulCups/contents/images/2560x1600.jpg", P + "FallenLeaf/contents/images/2560x1600.jpg",
    P + "OneStandsOut/contents/images/2560x1600.jpg",
    "skimage:coffee", "skimage:chelsea", "skimage:rocket", "skimage:astronaut", "skimage:motorcycle",
]
BACKGROUND_PHOTOS_WALLPAPERS = [
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
PAL = "usr/share/palapeli/collection/"
CV = "usr/share/doc/opencv-doc/examples/data/"
GC_OBJECTS = [
    "explore_farm_animals@712877", "erase@2468270", "erase@3658664", "explore_world_animals@439055",
    "erase@2750402", "erase@1785662", "explore_world_animals@716720", "explore_world_music@3105671",
    "erase@998432", "explore_world_animals@1319890", "erase@705722", "explore_farm_animals@232305",
    "erase@1568170", "erase@2111744", "explore_world_animals@1229800", "explore_world_animals@991822",
    "erase@1400044", "explore_world_animals@143241", "explore_farm_animals@23202", "erase@2259250",
    "explore_world_animals@776404", "explore_world_music@3016603", "erase@3347702",
    "explore_world_animals@415272", "erase@2163142", "erase@416838", "erase@3127740", "erase@3025796",
    "erase@1694482", "explore_world_animals@204451", "explore_world_animals@49919", "erase@3505888",
    "explore_farm_animals@856834", "erase@2952732", "erase@822068", "erase@2885212", "erase@170230",
    "explore_world_animals@637634", "explore_world_animals@1181608", "explore_farm_animals@479793",
    "erase@244786", "erase@2429376", "explore_world_animals@319619", "erase@14442",
    "explore_farm_animals@580156", "erase@1314534", "erase@2612356", "erase@1234826", "erase@3578066",
    "explore_world_animals@876918", "erase@655970",
]
GC_BACKGROUNDS = [
    "explore_monuments@1555657", "clickgame@122918", "explore_monuments@1241771", "details@932648",
    "explore_monuments@2441265", "explore_monuments@154076", "explore_monuments@1833957", "details@576217",
    "explore_monuments@696069", "clickgame@385479", "explore_monuments@2887789", "details@1271174",
    "details@1869312", "details@473991", "explore_monuments@1638413", "explore_monuments@2312825",
    "explore_world_music@3168655", "explore_monuments@3428414", "explore_monuments@96424",
    "explore_monuments@957365", "explore_world_music@2825782", "explore_monuments@3267541",
    "explore_monuments@2258147", "clickgame@444473", "explore_monuments@1154013", "explore_monuments@838207",
    "explore_monuments@3527620", "explore_world_music@1592141", "explore_monuments@424754",
    "explore_monuments@213234", "explore_monuments@1687365", "details@1707338", "explore_monuments@1807741",
    "explore_monuments@1084243", "explore_monuments@3048427", "explore_world_music@2881592",
    "explore_monuments@2615509", "explore_monuments@1016655", "explore_monuments@1295425",
    "explore_monuments@46476", "details@155621", "clickgame@207056", "explore_monuments@663831",
    "explore_monuments@2064283", "details@1380032", "explore_monuments@3359134", "explore_monuments@326398",
    "explore_monuments@525155", "details@53165", "explore_monuments@1599567", "explore_monuments@2665161",
    "details@1065392", "details@1576850", "explore_monuments@803511", "explore_monuments@939891",
    "explore_monuments@488125", "explore_monuments@2097725", "explore_monuments@1900209",
    "explore_monuments@3162171", "details@310171", "explore_monuments@3487864", "explore_monuments@3608408",
    "explore_monuments@2394293", "explore_monuments@2976727", "clickgame@14934", "clickgame@237924",
    "explore_monuments@2548815", "explore_world_animals@1356348", "erase@545882", "explore_farm_animals@422560",
    "explore_farm_animals@113632", "erase@896822", "explore_farm_animals@507584", "erase@293634",
    "erase@1947350",
]

OBJECT_PHOTOS = OBJECT_PHOTOS_WALLPAPERS + [
    PAL + "european-honey-bee.jpg", PAL + "panther-chameleon-female.jpg", PAL + "citrus-fruits.jpg",
    CV + "fruits.jpg", CV + "baboon.jpg", CV + "squirrel_cls.jpg", CV + "orange.jpg", CV + "chicky_512.png",
    CV + "licenseplate_motion.jpg", CV + "apple.jpg", CV + "butterfly.jpg",
] + ["gcompris:" + n for n in GC_OBJECTS]
BACKGROUND_PHOTOS = BACKGROUND_PHOTOS_WALLPAPERS + [
    PAL + "cincinnati-bridge.jpg", PAL + "castle-maintenon.jpg", CV + "leuvenA.jpg", CV + "home.jpg",
    CV + "aloeL.jpg", CV + "stuff.jpg", CV + "rubberwhale2.png", CV + "messi5.jpg", CV + "aero1.jpg",
    CV + "building.jpg",
] + ["gcompris:" + n for n in GC_BACKGROUNDS]


def read_gcompris(name, root):
    """The WebP or JPEG stream at ``ACTIVITY@OFFSET`` inside gcompris-qt-data's resource files."""
    activity, offset = name.split("@")
    path = os.path.join(root, "usr/share/gcompris-qt/rcc", activity + ".rcc")
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        f.seek(int(offset))
        blob = f.read(12)
        if blob[:4] == b"RIFF" and blob[8:12] == b"WEBP":
            blob += f.read(int.from_bytes(blob[4:8], "little") - 4)
        elif blob[:3] == b"\xff\xd8\xff":
            blob += f.read(1 << 24)  # the decoder stops at the JPEG's end marker
        else:
            raise ValueError(f"{name}: no WebP or JPEG stream at that offset")
    return np.asarray(Image.open(BytesIO(blob)).convert("RGB"))


def load_photo(name, root, long_side=1024):
    """float32 RGB in [0, 1], downscaled to ``long_side`` (or None if absent)."""
    if name.startswith("skimage:"):
        key = name.split(":")[1]
        im = skdata.stereo_motorcycle()[0] if key == "motorcycle" else getattr(skdata, key)()
    elif name.startswith("gcompris:"):
        im = read_gcompris(name.split(":", 1)[1], root)
        if im is None:
            return None
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
    """n <= 2 crops: a central one (50-80 % of each side, jittered), or the two
    halves along the longer side (70-95 % of a half each), so they share no pixel."""
    h, w = photo.shape[:2]
    if n == 1:
        cells = [(0, 0, h, w)]
        frac = (0.5, 0.8)
    elif n == 2:
        cells = [(0, 0, h, w // 2), (0, w // 2, h, w)] if w >= h else [(0, 0, h // 2, w), (h // 2, 0, h, w)]
        frac = (0.7, 0.95)
    else:
        raise ValueError("at most two crops per object photo")
    out = []
    for cy0, cx0, cy1, cx1 in cells:
        ch, cw = cy1 - cy0, cx1 - cx0
        hh, ww = (np.array([ch, cw]) * rng.uniform(*frac, 2)).astype(int)
        y0 = cy0 + (ch - hh) // 2 + int(rng.integers(-(ch - hh) // 4, (ch - hh) // 4 + 1))
        x0 = cx0 + (cw - ww) // 2 + int(rng.integers(-(cw - ww) // 4, (cw - ww) // 4 + 1))
        out.append((photo[y0:y0 + hh, x0:x0 + ww], (int(y0), int(x0), int(y0 + hh), int(x0 + ww))))
    return out


def background(photo, cell, rng):
    """A 4:3 crop (40-60 % of the largest one) placed in ``cell`` of a 3x3 grid
    of positions, with a random flip, at W x H."""
    h, w = photo.shape[:2]
    ch = min(h, int(w * H / W))
    s = rng.uniform(0.4, 0.6)
    hh, ww = int(ch * s), int(ch * s * W / H)
    r, c = divmod(cell % 9, 3)
    y0 = int((r + rng.random()) / 3 * (h - hh))
    x0 = int((c + rng.random()) / 3 * (w - ww))
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


def set_size(width, height):
    """The composite size used by background() and paste()."""
    global W, H
    if width < 64 or height < 64:
        raise SystemExit("--size: at least 64 x 64 pixels")
    W, H = int(width), int(height)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo-root", default="/tmp/clutter_photos_raw")
    ap.add_argument("--out", default=os.path.join(HERE, "cache"))
    ap.add_argument("--instances", type=int, default=110)
    ap.add_argument("--per-instance", type=int, default=9, help="composites per instance (1 query + positives)")
    ap.add_argument("--distractors", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--area", type=float, nargs=2, default=(0.02, 0.10), help="object area fraction range")
    ap.add_argument("--gt", default=os.path.join(HERE, "ground_truth.json"))
    ap.add_argument("--size", type=int, nargs=2, default=(W, H), metavar=("WIDTH", "HEIGHT"),
                    help="composite size in pixels (512 x 384 gives 12 x 16 EfficientNet maps, "
                         "1024 x 768 gives 24 x 32)")
    args = ap.parse_args()
    set_size(*args.size)
    long_side = max(1024, 2 * W)
    rng = np.random.default_rng(args.seed)
    objs = [(n, p) for n in OBJECT_PHOTOS if (p := load_photo(n, args.photo_root, long_side)) is not None]
    bgs = [(n, p) for n in BACKGROUND_PHOTOS if (p := load_photo(n, args.photo_root, long_side)) is not None]
    if len(bgs) < args.per_instance:
        raise SystemExit(f"need at least {args.per_instance} background photos, found {len(bgs)}")
    if args.instances > 2 * len(objs):
        raise SystemExit(f"{args.instances} instances need more than 2 crops per object photo ({len(objs)} photos)")
    # Every object photo gives one instance; the first (instances - photos) of a
    # random order give two (its halves).
    two = set(rng.permutation(len(objs))[: max(0, args.instances - len(objs))].tolist())
    instances = []  # (object photo index, crop, box in the photo)
    for i in rng.permutation(len(objs))[: args.instances] if args.instances < len(objs) else range(len(objs)):
        instances += [(int(i), c, b) for c, b in object_crops(objs[i][1], 2 if i in two else 1, rng)]
    instances.sort(key=lambda t: (t[0], t[2]))

    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)
    records = []

    def emit(im, rec):
        rec["file"] = f"images/{len(records):05d}.jpg"
        io.imsave(os.path.join(args.out, rec["file"]), (np.clip(im, 0, 1) * 255).astype(np.uint8),
                  quality=92, check_contrast=False)
        records.append(rec)

    # Background photos least-used first (ties at random), never twice for one
    # instance; the n-th use of a photo takes the n-th cell of its own shuffled
    # 3x3 grid of crop positions.
    uses = np.zeros(len(bgs), int)
    cells = [rng.permutation(9) for _ in bgs]

    def pick(exclude=()):
        free = [b for b in range(len(bgs)) if b not in exclude]
        low = min(uses[b] for b in free)
        b = int(rng.choice([b for b in free if uses[b] == low]))
        cell = int(cells[b][uses[b] % 9])
        uses[b] += 1
        return b, cell

    for inst, (src, crop, src_box) in enumerate(instances):
        chosen = []
        for _ in range(args.per_instance):
            b, cell = pick(chosen)
            chosen.append(b)
            bg, bg_box = background(bgs[b][1], cell, rng)
            im, box = paste(bg, crop, rng, tuple(args.area))
            emit(im, {"instance": inst, "object_photo": src, "object_crop": src_box,
                      "background": b, "background_crop": bg_box, "box": box})
    for _ in range(args.distractors):
        b, cell = pick()
        bg, bg_box = background(bgs[b][1], cell, rng)
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
          f"each background photo in {uses.min()}-{uses.max()} images; "
          f"{len(database)} database images, {len(queries)} queries -> {args.out}")


if __name__ == "__main__":
    main()
