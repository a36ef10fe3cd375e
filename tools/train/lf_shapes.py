"""Procedural shapes dataset for the built-in default model (lf-tiny-shapes).

One anti-aliased shape (circle, square, triangle, star) of a named colour, size and position on a plain
background of another named colour, with a caption such as "a red circle on a white background" or
"a small blue star in the top left". Everything is drawn from a numpy Generator, so a seed fixes it all.
"""
import math

import numpy as np
from PIL import Image, ImageDraw

RES = 256
SS = 4  # supersampling factor for anti-aliasing

COLOURS = {
    "red": (220, 30, 30),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (245, 215, 40),
    "orange": (245, 140, 20),
    "purple": (140, 50, 180),
    "pink": (245, 130, 190),
    "cyan": (40, 210, 220),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
    "brown": (130, 80, 40),
}
COLOUR_NAMES = list(COLOURS)
SHAPES = ["circle", "square", "triangle", "star"]
SIZES = {"small": (0.10, 0.13), "medium": (0.17, 0.21), "large": (0.26, 0.31)}  # radius / RES
SIZE_NAMES = list(SIZES)
# position name -> (x, y) centre as a fraction of the image
POSITIONS = {
    "center": (0.5, 0.5), "left": (0.25, 0.5), "right": (0.75, 0.5), "top": (0.5, 0.25),
    "bottom": (0.5, 0.75), "top left": (0.25, 0.25), "top right": (0.75, 0.25),
    "bottom left": (0.25, 0.75), "bottom right": (0.75, 0.75),
}
POSITION_NAMES = list(POSITIONS)
POSITION_PHRASES = {
    "center": ["in the center", "in the middle"],
    "left": ["on the left"], "right": ["on the right"],
    "top": ["at the top"], "bottom": ["at the bottom"],
    "top left": ["in the top left", "in the top left corner"],
    "top right": ["in the top right", "in the top right corner"],
    "bottom left": ["in the bottom left", "in the bottom left corner"],
    "bottom right": ["in the bottom right", "in the bottom right corner"],
}
MIN_CONTRAST = 100.0  # minimal RGB distance between shape and background colours


def colour_dist(a, b):
    return math.dist(COLOURS[a], COLOURS[b])


def sample_attrs(rng):
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
    while True:
        bg = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
        if bg != colour and colour_dist(bg, colour) >= MIN_CONTRAST:
            break
    size = SIZE_NAMES[rng.integers(len(SIZE_NAMES))]
    pos = POSITION_NAMES[rng.integers(len(POSITION_NAMES))]
    lo, hi = SIZES[size]
    r = float(rng.uniform(lo, hi)) * RES
    px, py = POSITIONS[pos]
    cx = px * RES + float(rng.uniform(-0.04, 0.04)) * RES
    cy = py * RES + float(rng.uniform(-0.04, 0.04)) * RES
    m = r + 2
    cx = min(max(cx, m), RES - m)
    cy = min(max(cy, m), RES - m)
    return {"shape": shape, "colour": colour, "bg": bg, "size": size, "pos": pos, "r": r, "cx": cx, "cy": cy}


def shape_polygon(shape, cx, cy, r):
    if shape == "square":
        h = r * 0.85
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":
        # equilateral, pointing up, centred on its bounding box
        w = r * 1.05
        h = w * math.sqrt(3)
        return [(cx, cy - h / 2), (cx + w, cy + h / 2), (cx - w, cy + h / 2)]
    if shape == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.42
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + 0.08 * r + rr * math.sin(a)))
        return pts
    raise ValueError(shape)


def render(a):
    """attrs -> HxWx3 uint8 array."""
    big = Image.new("RGB", (RES * SS, RES * SS), COLOURS[a["bg"]])
    d = ImageDraw.Draw(big)
    cx, cy, r = a["cx"] * SS, a["cy"] * SS, a["r"] * SS
    if a["shape"] == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=COLOURS[a["colour"]])
    else:
        d.polygon(shape_polygon(a["shape"], cx, cy, r), fill=COLOURS[a["colour"]])
    return np.asarray(big.resize((RES, RES), Image.BOX))


def art(word):
    return "an" if word[0] in "aeiou" else "a"


def caption(a, rng):
    """A caption for attrs; size, position and background are each sometimes left out."""
    use_size = rng.random() < 0.6
    use_pos = rng.random() < 0.6
    use_bg = rng.random() < 0.7
    noun = (a["size"] + " " if use_size else "") + a["colour"] + " " + a["shape"]
    pos = rng.choice(POSITION_PHRASES[a["pos"]]) if use_pos else ""
    t = rng.integers(4)
    if t == 0:
        s = art(noun) + " " + noun
        if pos:
            s += " " + pos
        if use_bg:
            s += " on " + art(a["bg"]) + " " + a["bg"] + " background"
    elif t == 1:
        s = noun
        if pos:
            s += " " + pos
        if use_bg:
            s += ", " + a["bg"] + " background"
    elif t == 2:
        s = art(noun) + " " + noun
        if use_bg:
            s += " on " + art(a["bg"]) + " " + a["bg"] + " background"
        if pos:
            s += ", " + pos
    else:
        s = (art(a["bg"]) + " " + a["bg"] + " background with " if use_bg else "a picture of ") + art(noun) + " " + noun
        if pos:
            s += " " + pos
    return s


def full_caption(a):
    """The canonical caption with every attribute (used for evaluation prompts)."""
    return (f"a {a['size']} {a['colour']} {a['shape']} {POSITION_PHRASES[a['pos']][0]} "
            f"on {art(a['bg'])} {a['bg']} background")


if __name__ == "__main__":
    import sys
    rng = np.random.default_rng(0)
    tiles = []
    for i in range(16):
        a = sample_attrs(rng)
        print(caption(a, rng))
        tiles.append(render(a))
    grid = np.concatenate([np.concatenate(tiles[r * 4:(r + 1) * 4], 1) for r in range(4)], 0)
    Image.fromarray(grid).save(sys.argv[1] if len(sys.argv) > 1 else "/tmp/lf_shapes_demo.png")
