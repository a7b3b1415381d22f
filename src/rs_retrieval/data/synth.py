"""`rs_synth`: a small synthetic aerial image-caption dataset, generated deterministically from a seed.

Each image is a top-down scene drawn with PIL (water, grass, sand, fields, runways, roads, ships,
planes, storage tanks, buildings, trees, cars ...) and comes with five different captions that
state countable, colour and position facts ("Three white planes are parked in the upper left of
the airport."). Several images share each scene class and differ in counts, colours and positions,
so retrieval on it is learnable but not trivial. Every drawn object is recorded with a normalised
box in `objects` (GaLR builds its local graph from these).

The dataset is written in the release layout (`images/*.png` + Karpathy-style `dataset.json`), so
it is read by the same code as the real datasets and doubles as a realistic test fixture.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..fileio import atomic_directory

#: Bump when the drawing or caption code changes: it is part of the cache key.
SYNTH_VERSION = 1
SYNTH_SCENES = ("airport", "beach", "farmland", "forest", "harbour", "industrial", "parking", "residential")
DEFAULT_SIZES = {"train": 400, "val": 50, "test": 100}
DEFAULT_IMAGE_SIZE = 256
_MARKER = ".complete"

COLORS = {
    "white": (236, 236, 230),
    "grey": (140, 140, 138),
    "red": (196, 52, 44),
    "blue": (52, 90, 196),
    "yellow": (228, 198, 56),
    "black": (38, 38, 42),
    "green": (58, 138, 58),
    "orange": (226, 130, 42),
}
_UNITS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
#: Number words 0..39 (3 groups of at most 8 objects stay below that).
_NUMBERS = _UNITS + tuple(f"{tens}{'-' + _UNITS[u] if u else ''}" for tens in ("twenty", "thirty") for u in range(10))
_POSITIONS = (
    ("in the upper left", "at the top", "in the upper right"),
    ("on the left", "in the center", "on the right"),
    ("in the lower left", "at the bottom", "in the lower right"),
)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Category:
    """A countable object kind: its words, size range (fraction of the image) and colours."""

    name: str
    plural: str
    verbs: tuple[str, str]  # singular, plural
    shape: str  # plane, ship, car, building, pond, tank, round (trees, umbrellas)
    size: tuple[float, float]
    colors: tuple[str, ...]
    max_count: int


CATEGORIES = {
    c.name: c
    for c in (
        Category(
            "plane", "planes", ("is parked", "are parked"), "plane", (0.11, 0.15), ("white", "grey", "red", "blue"), 5
        ),
        Category(
            "ship", "ships", ("is moored", "are moored"), "ship", (0.12, 0.17), ("white", "red", "black", "orange"), 5
        ),
        Category("storage tank", "storage tanks", ("stands", "stand"), "tank", (0.07, 0.1), ("white", "grey"), 6),
        Category(
            "building", "buildings", ("stands", "stand"), "building", (0.07, 0.12), ("red", "grey", "white", "blue"), 5
        ),
        Category("tree", "trees", ("grows", "grow"), "round", (0.04, 0.06), ("green", "yellow", "orange"), 6),
        Category(
            "car",
            "cars",
            ("is parked", "are parked"),
            "car",
            (0.045, 0.055),
            ("red", "white", "blue", "black", "yellow"),
            8,
        ),
        Category("pond", "ponds", ("lies", "lie"), "pond", (0.12, 0.18), ("blue", "green"), 2),
        Category(
            "umbrella", "umbrellas", ("stands", "stand"), "round", (0.03, 0.04), ("red", "blue", "yellow", "orange"), 6
        ),
    )
}


@dataclass
class Slot:
    """Where a category may appear in a scene, and how captions relate it to the scene."""

    category: str
    regions: list[Box]
    relation: str


@dataclass
class Layout:
    """What a scene drew as background, and where its objects may go."""

    noun: str
    where: str  # "in the airport", "on the beach"
    background: str
    slots: list[Slot]
    structures: list[dict] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)


@dataclass
class Group:
    category: Category
    color: str
    boxes: list[Box]
    relation: str

    @property
    def count(self) -> int:
        return len(self.boxes)

    @property
    def position(self) -> str:
        cx = sum((b[0] + b[2]) / 2 for b in self.boxes) / self.count
        cy = sum((b[1] + b[3]) / 2 for b in self.boxes) / self.count
        return _POSITIONS[min(int(cy * 3), 2)][min(int(cx * 3), 2)]

    def phrase(self, count: bool = True) -> str:
        """ "three white planes", or with `count=False` "the white planes"."""
        noun = self.category.name if self.count == 1 else self.category.plural
        return f"{_NUMBERS[self.count] if count else 'the'} {self.color} {noun}"

    @property
    def verb(self) -> str:
        return self.category.verbs[self.count > 1]


# ------------------------------------------------------------------------------------- drawing


class Canvas:
    """PIL drawing in normalised coordinates."""

    def __init__(self, size: int):
        self.size = size
        self.image = Image.new("RGB", (size, size))
        self.draw = ImageDraw.Draw(self.image)

    def px(self, points):
        return [(x * self.size, y * self.size) for x, y in points]

    def rect(self, box: Box, fill):
        x0, y0, x1, y1 = (v * self.size for v in box)
        self.draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], fill=fill)

    def ellipse(self, box: Box, fill, outline=None):
        self.draw.ellipse([v * self.size for v in box], fill=fill, outline=outline)

    def polygon(self, points, fill):
        self.draw.polygon(self.px(points), fill=fill)


def _shade(rgb, factor: float):
    return tuple(max(0, min(255, int(v * factor))) for v in rgb)


def _jitter(rgb, rng: random.Random, amount: int = 10):
    return tuple(max(0, min(255, v + rng.randint(-amount, amount))) for v in rgb)


# Unit outlines along +x, centred on the origin; scaled by the object's length.
_PLANE = [
    [(-0.5, -0.06), (0.42, -0.06), (0.5, 0.0), (0.42, 0.06), (-0.5, 0.06)],
    [(-0.05, 0.0), (0.12, -0.5), (0.22, -0.5), (0.14, 0.0), (0.22, 0.5), (0.12, 0.5)],
    [(-0.48, 0.0), (-0.42, -0.2), (-0.35, -0.2), (-0.38, 0.0), (-0.35, 0.2), (-0.42, 0.2)],
]
_SHIP = [[(-0.5, -0.14), (0.25, -0.14), (0.5, 0.0), (0.25, 0.14), (-0.5, 0.14)]]


def _transform(outline, cx, cy, length, angle):
    c, s = math.cos(angle), math.sin(angle)
    return [[(cx + length * (x * c - y * s), cy + length * (x * s + y * c)) for x, y in poly] for poly in outline]


def _bounds(polys) -> Box:
    xs = [x for poly in polys for x, _ in poly]
    ys = [y for poly in polys for _, y in poly]
    return min(xs), min(ys), max(xs), max(ys)


def _object_shape(category: Category, rng: random.Random) -> tuple[list, float, float]:
    """Polygons (origin-centred, normalised) or an ellipse marker, and the half-extents of the box."""
    length = rng.uniform(*category.size)
    angle = rng.choice((0.0, 0.5, 1.0, 1.5)) * math.pi
    if category.shape in ("plane", "ship"):
        outline = _PLANE if category.shape == "plane" else _SHIP
        polys = _transform(outline, 0.0, 0.0, length, angle)
        x0, y0, x1, y1 = _bounds(polys)
        return polys, max(-x0, x1), max(-y0, y1)
    if category.shape == "car":
        w, h = (length, length * 0.5) if rng.random() < 0.5 else (length * 0.5, length)
        return [[(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]], w / 2, h / 2
    if category.shape == "building":
        w, h = length, length * rng.uniform(0.6, 1.0)
        w, h = (w, h) if rng.random() < 0.5 else (h, w)
        return [[(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]], w / 2, h / 2
    if category.shape == "pond":
        return [], length / 2, length * rng.uniform(0.3, 0.45)
    return [], length / 2, length / 2  # round things: tanks, trees, umbrellas


def _draw_object(canvas: Canvas, category: Category, polys, box: Box, color: str, rng: random.Random):
    rgb = _jitter(COLORS[color], rng, 6)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    shadow = 0.012
    if category.shape in ("plane", "ship", "car", "building"):
        moved = [[(cx + x, cy + y) for x, y in poly] for poly in polys]
        if category.shape in ("building", "plane"):
            for poly in moved:
                canvas.polygon([(x + shadow, y + shadow) for x, y in poly], fill=(40, 40, 40))
        for poly in moved:
            canvas.polygon(poly, fill=rgb)
        if category.shape == "building":  # roof ridge
            horizontal = box[2] - box[0] >= box[3] - box[1]
            ridge = (
                (box[0], cy - 0.003, box[2], cy + 0.003) if horizontal else (cx - 0.003, box[1], cx + 0.003, box[3])
            )
            canvas.rect(ridge, _shade(rgb, 0.75))
        elif category.shape == "ship":
            canvas.rect((cx - 0.012, cy - 0.012, cx + 0.012, cy + 0.012), _shade(rgb, 0.7))
        return
    if category.shape != "pond":
        canvas.ellipse((box[0] + shadow, box[1] + shadow, box[2] + shadow, box[3] + shadow), fill=(40, 44, 36))
    canvas.ellipse(box, fill=rgb, outline=_shade(rgb, 0.7))
    if category.shape == "tank":
        inset = (box[2] - box[0]) * 0.25
        canvas.ellipse((box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset), fill=_shade(rgb, 0.85))


# -------------------------------------------------------------------------------------- scenes


def _side_split(rng: random.Random, low: float, high: float) -> tuple[str, float]:
    return rng.choice(("left", "right", "top", "bottom")), rng.uniform(low, high)


def _side_boxes(side: str, cut: float) -> tuple[Box, Box]:
    """(the box on `side` of the cut line, the rest)."""
    if side == "left":
        return (0, 0, cut, 1), (cut, 0, 1, 1)
    if side == "right":
        return (1 - cut, 0, 1, 1), (0, 0, 1 - cut, 1)
    if side == "top":
        return (0, 0, 1, cut), (0, cut, 1, 1)
    return (0, 1 - cut, 1, 1), (0, 0, 1, 1 - cut)


def _band(canvas: Canvas, rng: random.Random, width: float, fill, name: str, color: str) -> tuple[dict, list[Box]]:
    """A straight band across the image (runway, road): its record and the two boxes beside it."""
    centre = rng.uniform(0.35, 0.65)
    lo, hi = centre - width / 2, centre + width / 2
    if rng.random() < 0.5:
        box, beside = (0, lo, 1, hi), [(0, 0, 1, lo), (0, hi, 1, 1)]
    else:
        box, beside = (lo, 0, hi, 1), [(0, 0, lo, 1), (hi, 0, 1, 1)]
    canvas.rect(box, fill)
    return {"category": name, "color": color, "bbox": list(box)}, beside


def _dashes(canvas: Canvas, box: Box, color):
    horizontal = box[2] - box[0] > box[3] - box[1]
    mid = ((box[1] + box[3]) / 2) if horizontal else ((box[0] + box[2]) / 2)
    for start in np.arange(0.02, 1.0, 0.1):
        dash = (
            (start, mid - 0.004, start + 0.05, mid + 0.004)
            if horizontal
            else (mid - 0.004, start, mid + 0.004, start + 0.05)
        )
        canvas.rect(dash, color)


def _airport(canvas: Canvas, rng: random.Random) -> Layout:
    canvas.rect((0, 0, 1, 1), rng.choice(((96, 128, 70), (140, 118, 86))))
    runway, beside = _band(canvas, rng, rng.uniform(0.12, 0.16), (118, 118, 116), "runway", "grey")
    _dashes(canvas, tuple(runway["bbox"]), COLORS["white"])
    return Layout(
        "airport",
        "in the airport",
        "a grey runway",
        [Slot("plane", beside, "beside the grey runway"), Slot("building", beside, "near the runway")],
        [runway],
        ["runway"],
    )


def _harbour(canvas: Canvas, rng: random.Random) -> Layout:
    side, cut = _side_split(rng, 0.45, 0.6)
    water, land = _side_boxes(side, cut)
    canvas.rect(land, (162, 160, 152))
    canvas.rect(water, (46, 84, 140))
    return Layout(
        "harbour",
        "in the harbour",
        "blue water",
        [
            Slot("ship", [water], "in the blue water"),
            Slot("storage tank", [land], "on the shore"),
            Slot("building", [land], "on the quay"),
        ],
        [],
        ["water", "quay"],
    )


def _beach(canvas: Canvas, rng: random.Random) -> Layout:
    side, cut = _side_split(rng, 0.4, 0.55)
    sea, sand = _side_boxes(side, cut)
    canvas.rect(sand, (224, 206, 162))
    canvas.rect(sea, (52, 110, 160))
    foam = {  # a white line where the waves meet the sand
        "left": (cut - 0.015, 0, cut, 1),
        "right": (1 - cut, 0, 1 - cut + 0.015, 1),
        "top": (0, cut - 0.015, 1, cut),
        "bottom": (0, 1 - cut, 1, 1 - cut + 0.015),
    }[side]
    canvas.rect(foam, COLORS["white"])
    return Layout(
        "beach",
        "on the beach",
        "yellow sand",
        [
            Slot("umbrella", [sand], "on the sand"),
            Slot("ship", [sea], "in the sea"),
            Slot("tree", [sand], "along the beach"),
        ],
        [],
        ["sand", "sea"],
    )


def _residential(canvas: Canvas, rng: random.Random) -> Layout:
    canvas.rect((0, 0, 1, 1), (92, 134, 72))
    road, beside = _band(canvas, rng, 0.07, (88, 88, 92), "road", "grey")
    return Layout(
        "residential area",
        "in the residential area",
        "a grey road",
        [
            Slot("building", beside, "along the road"),
            Slot("tree", beside, "near the houses"),
            Slot("car", beside, "beside the road"),
        ],
        [road],
        ["road", "grass"],
    )


def _industrial(canvas: Canvas, rng: random.Random) -> Layout:
    canvas.rect((0, 0, 1, 1), (152, 150, 142))
    road, beside = _band(canvas, rng, 0.06, (90, 90, 94), "road", "grey")
    return Layout(
        "industrial area",
        "in the industrial area",
        "a grey road",
        [Slot("storage tank", beside, "near the road"), Slot("building", beside, "beside the road")],
        [road],
        ["road", "concrete"],
    )


def _parking(canvas: Canvas, rng: random.Random) -> Layout:
    canvas.rect((0, 0, 1, 1), (78, 78, 82))
    for y in np.arange(0.1, 1.0, 0.2):  # white lane markings
        canvas.rect((0.03, y - 0.003, 0.97, y + 0.003), (210, 210, 206))
    return Layout(
        "parking lot",
        "in the parking lot",
        "dark asphalt",
        [Slot("car", [(0, 0, 1, 1)], "in the parking lot"), Slot("tree", [(0, 0, 1, 1)], "in the parking lot")],
        [],
        ["asphalt"],
    )


def _farmland(canvas: Canvas, rng: random.Random) -> Layout:
    palette = {"green": (92, 150, 64), "yellow": (212, 190, 94), "brown": (150, 110, 72)}
    cuts = (rng.uniform(0.25, 0.4), rng.uniform(0.6, 0.75))
    vertical = rng.random() < 0.5
    edges, names = [0.0, *cuts, 1.0], []
    for k in range(3):
        name = rng.choice(sorted(palette))
        names.append(name)
        box = (edges[k], 0, edges[k + 1], 1) if vertical else (0, edges[k], 1, edges[k + 1])
        canvas.rect(box, palette[name])
        for line in np.arange(0.01, 1.0, 0.04):  # furrows across each field
            furrow = (box[0], line, box[2], line + 0.006) if vertical else (line, box[1], line + 0.006, box[3])
            canvas.rect(furrow, _shade(palette[name], 0.88))
    colors = sorted(set(names), key=names.index)
    fields = " and ".join(colors) + " fields"
    return Layout(
        "farmland",
        "on the farmland",
        fields,
        [
            Slot("building", [(0, 0, 1, 1)], "among the fields"),
            Slot("tree", [(0, 0, 1, 1)], "between the fields"),
            Slot("pond", [(0, 0, 1, 1)], "next to the fields"),
        ],
        [],
        ["field"],
    )


def _forest(canvas: Canvas, rng: random.Random) -> Layout:
    canvas.rect((0, 0, 1, 1), (34, 74, 38))
    for _ in range(160):  # canopy texture: many overlapping crowns
        x, y, r = rng.random(), rng.random(), rng.uniform(0.02, 0.05)
        canvas.ellipse((x - r, y - r, x + r, y + r), fill=_jitter((44, 96, 46), rng, 14))
    return Layout(
        "forest",
        "in the forest",
        "dense trees",
        [Slot("pond", [(0, 0, 1, 1)], "surrounded by trees"), Slot("building", [(0, 0, 1, 1)], "in a clearing")],
        [],
        ["tree"],
    )


_SCENE_BUILDERS = {
    "airport": _airport,
    "beach": _beach,
    "farmland": _farmland,
    "forest": _forest,
    "harbour": _harbour,
    "industrial": _industrial,
    "parking": _parking,
    "residential": _residential,
}


# ------------------------------------------------------------------------------------ placement


def _overlaps(a: Box, b: Box, pad: float = 0.01) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def _place_group(canvas: Canvas, slot: Slot, color: str, count: int, taken: list[Box], rng: random.Random) -> Group:
    """Up to `count` objects inside a random patch of one of the slot's regions, not overlapping `taken`."""
    category = CATEGORIES[slot.category]
    region = max(slot.regions, key=lambda r: (r[2] - r[0]) * (r[3] - r[1]) * rng.uniform(0.5, 1.0))
    half = 0.14 + 0.02 * count
    cx, cy = rng.uniform(region[0], region[2]), rng.uniform(region[1], region[3])
    patch = (
        max(region[0], cx - half),
        max(region[1], cy - half),
        min(region[2], cx + half),
        min(region[3], cy + half),
    )
    boxes: list[Box] = []
    for _ in range(count):
        for _ in range(30):
            polys, hx, hy = _object_shape(category, rng)
            if patch[2] - patch[0] <= 2 * hx or patch[3] - patch[1] <= 2 * hy:
                continue
            ox, oy = rng.uniform(patch[0] + hx, patch[2] - hx), rng.uniform(patch[1] + hy, patch[3] - hy)
            box = tuple(round(v, 4) for v in (ox - hx, oy - hy, ox + hx, oy + hy))  # as stored in `objects`
            if not any(_overlaps(box, other) for other in taken):
                _draw_object(canvas, category, polys, box, color, rng)
                boxes.append(box)
                taken.append(box)
                break
    return Group(category, color, boxes, slot.relation)


def _captions(layout: Layout, groups: list[Group]) -> list[str]:
    """Five captions with different structures; each states counts, colours or positions."""
    main, last = groups[0], groups[-1]
    parts = [layout.background, *(g.phrase() for g in groups)]
    inventory = ", ".join(parts[:-1]) + " and " + parts[-1]
    totals: dict[str, int] = {}
    for g in groups:
        totals[g.category.name] = totals.get(g.category.name, 0) + g.count
    total_words = [f"{_NUMBERS[n]} {name if n == 1 else CATEGORIES[name].plural}" for name, n in totals.items()]
    first_total = next(iter(totals.values()))
    contrast = (
        f"{main.phrase(count=False)} {main.verb} {main.position} "
        f"and {last.phrase(count=False)} {last.verb} {last.position}"
        if len(groups) > 1
        else f"{main.phrase()} {main.verb} {main.relation} {main.position}"
    )
    captions = [
        f"{main.phrase()} {main.verb} {main.position} of the {layout.noun}",
        f"{'an' if layout.noun[0] in 'aeiou' else 'a'} {layout.noun} with {inventory}",
        f"{last.position}, {last.phrase()} {last.verb} {last.relation}",
        f"there {'is' if first_total == 1 else 'are'} {' and '.join(total_words)} {layout.where}",
        contrast,
    ]
    return [c[0].upper() + c[1:] + "." for c in captions]


def render_image(scene: str, rng: random.Random, image_size: int) -> tuple[Image.Image, dict]:
    """Draw one scene; returns the image and its annotation (captions, objects, keywords)."""
    canvas = Canvas(image_size)
    layout = _SCENE_BUILDERS[scene](canvas, rng)
    taken = [tuple(s["bbox"]) for s in layout.structures]
    num_groups = rng.randint(1, min(3, len(layout.slots) + 1))
    slots = [layout.slots[0]] + [rng.choice(layout.slots) for _ in range(num_groups - 1)]
    groups: list[Group] = []
    for slot in slots:
        category = CATEGORIES[slot.category]
        used = {g.color for g in groups if g.category is category}
        colors = [c for c in category.colors if c not in used]
        if not colors:
            continue
        group = _place_group(canvas, slot, rng.choice(colors), rng.randint(1, category.max_count), taken, rng)
        if group.count:
            groups.append(group)
    if not groups:  # the main slot always fits one object on an empty region; guard against layout bugs
        raise RuntimeError(f"rs_synth: no object could be placed in a {scene} scene")
    noise = np.random.default_rng(rng.getrandbits(63)).integers(
        -9, 10, size=(image_size, image_size, 1), dtype=np.int16
    )
    pixels = np.clip(np.asarray(canvas.image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    objects = [
        {"category": name, "color": color, "bbox": [round(min(max(v, 0.0), 1.0), 4) for v in box]}
        for name, color, box in [(g.category.name, g.color, b) for g in groups for b in g.boxes]
        + [(s["category"], s["color"], s["bbox"]) for s in layout.structures]
    ]
    keywords = sorted({g.category.name for g in groups} | set(layout.keywords))
    annotation = {"captions": _captions(layout, groups), "objects": objects, "keywords": keywords}
    return Image.fromarray(pixels), annotation


# --------------------------------------------------------------------------------- dataset files


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 0
    train_size: int = DEFAULT_SIZES["train"]
    val_size: int = DEFAULT_SIZES["val"]
    test_size: int = DEFAULT_SIZES["test"]
    image_size: int = DEFAULT_IMAGE_SIZE

    def __post_init__(self):
        sizes = (self.train_size, self.val_size, self.test_size)
        if any(not isinstance(n, int) or n < 0 for n in sizes) or not any(sizes):
            raise ValueError(f"rs_synth split sizes must be non-negative ints, not all zero; got {sizes}")
        if not isinstance(self.image_size, int) or self.image_size < 32:
            raise ValueError(f"rs_synth image_size must be an int >= 32, got {self.image_size!r}")

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": self.train_size, "val": self.val_size, "test": self.test_size}

    def as_dict(self) -> dict:
        return {"version": SYNTH_VERSION, "seed": self.seed, **self.sizes, "image_size": self.image_size}

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _scene_plan(config: SynthConfig) -> list[tuple[str, str, random.Random]]:
    """(split, scene, image rng) per image; scenes are balanced within each split, then shuffled."""
    plan = []
    for split, size in config.sizes.items():
        split_rng = random.Random(f"rs_synth:{config.seed}:{split}")
        scenes = [SYNTH_SCENES[i % len(SYNTH_SCENES)] for i in range(size)]
        split_rng.shuffle(scenes)
        plan += [
            (split, scene, random.Random(f"rs_synth:{config.seed}:{split}:{i}")) for i, scene in enumerate(scenes)
        ]
    return plan


def write_rs_synth(out_dir: str | os.PathLike, config: SynthConfig = SynthConfig()) -> Path:
    """Generate the dataset in the release layout into the new folder `out_dir` (built aside, then renamed)."""

    def fill(work: Path) -> None:
        (work / "images").mkdir()
        entries = []
        for image_id, (split, scene, rng) in enumerate(_scene_plan(config)):
            image, annotation = render_image(scene, rng, config.image_size)
            filename = f"{scene}_{image_id}.png"
            image.save(work / "images" / filename, format="PNG", compress_level=1)
            entries.append(
                {
                    "filename": filename,
                    "imgid": image_id,
                    "split": split,
                    "sentids": list(range(5 * image_id, 5 * image_id + 5)),
                    "sentences": [
                        {
                            "raw": raw,
                            "tokens": raw.lower().rstrip(".").replace(",", "").split(),
                            "imgid": image_id,
                            "sentid": 5 * image_id + k,
                        }
                        for k, raw in enumerate(annotation["captions"])
                    ],
                    "scene": scene,
                    "keywords": annotation["keywords"],
                    "objects": annotation["objects"],
                }
            )
        document = {"dataset": "rs_synth", "config": config.as_dict(), "images": entries}
        (work / "dataset.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
        (work / _MARKER).write_text(json.dumps(config.as_dict()), encoding="utf-8")

    atomic_directory(out_dir, fill)
    return Path(out_dir)


def default_cache_root() -> Path:
    base = os.environ.get("RS_RETRIEVAL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "rs_retrieval"
    )
    return Path(base) / "rs_synth"


def generate_rs_synth(cache_dir: str | os.PathLike | None = None, seed: int = 0, **sizes) -> Path:
    """The folder of the rs_synth release for this configuration, generated on first use.

    Lives in `<cache_dir or ~/.cache/rs_retrieval/rs_synth>/<config hash>/`; a finished folder
    holds a completion marker, so later calls return at once. `sizes`: `train_size`,
    `val_size`, `test_size`, `image_size`.
    """
    config = SynthConfig(seed=seed, **sizes)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    target = root / config.key
    if (target / _MARKER).is_file():
        return target
    if target.exists():  # a folder without the marker is not ours to trust
        raise FileExistsError(f"{target} exists without {_MARKER}; remove it to regenerate rs_synth")
    try:
        return write_rs_synth(target, config)
    except OSError:
        if (target / _MARKER).is_file():  # another process finished the same configuration first
            return target
        raise
