# The judge factory's own triggers and poisoning (numpy / torch, its own RNG streams): nothing here is
# ported from the toolkit's src/attacks or src/util/rng.ts. Images are uint8 numpy arrays [N, 1, H, W].
#
# Trigger specs (JSON):
#   {"kind": "patch", "pattern": "white"|"black"|"checker"|"checker-inv"|"random-binary"|"gray-<v>",
#    "size": k, "position": "tl"|"tr"|"bl"|"br"|"center"|[x, y]|"random", "margin": m}
#       stamped: the k x k pixels are replaced; a random position is drawn per image, uniform over every
#       place the patch fits, from the factory's RNG (a stream for the training set, another for the test)
#   {"kind": "blend", "pattern": "uniform-noise"|"gauss-noise"|"stripes"|"checker"|"rings"|"gradient",
#    "alpha": a, "period": p}        x' = round(x + a (t - x)) over the whole image (round half to even)
#   {"kind": "sig", "delta": d, "freq": f, "orientation": "horizontal"|"vertical", "phase": rad}
#       x' = clip(round(x + d sin(2 pi f j / W + phase))) along columns j (horizontal) or rows (vertical)
#   {"kind": "warp", "k": k, "s": s, "cross_ratio": r}   a WaNet-style smooth warp: a k x k field of
#       uniform(-1, 1) offsets (normalised by their mean magnitude), upsampled bicubically to H x W,
#       scaled by s / H and added to the identity sampling grid; `cross_ratio` x poisoned extra samples are
#       warped with the field plus per-image noise (labels kept), as WaNet's noise mode
import math
import numpy as np
import torch, torch.nn.functional as F

# one independent stream per purpose, all from the judge's seed
STREAMS = {'pattern': 1, 'poison': 2, 'train-positions': 3, 'test-positions': 4, 'warp': 5, 'cross': 6, 'subset': 7}


def rng(seed, stream):
    return np.random.default_rng(np.random.SeedSequence([int(seed), STREAMS[stream]]))


def round_half_even(a):
    return np.rint(a)


# ---- patches -----------------------------------------------------------------------------------------
def patch_pixels(t, seed):
    k, p = t['size'], t['pattern']
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing='ij')
    if p == 'white': return np.full((k, k), 255, np.uint8)
    if p == 'black': return np.zeros((k, k), np.uint8)
    if p == 'checker': return np.where((i + j) % 2 == 0, 255, 0).astype(np.uint8)
    if p == 'checker-inv': return np.where((i + j) % 2 == 1, 255, 0).astype(np.uint8)
    if p == 'random-binary':
        r = rng(seed, 'pattern').integers(0, 2, (k, k)).astype(np.uint8) * 255
        if r.min() == r.max(): r[0, 0] = 255 - r[0, 0]  # never a flat patch
        return r
    if p.startswith('gray-'): return np.full((k, k), int(p[5:]), np.uint8)
    raise ValueError(f'unknown patch pattern {p!r}')


def patch_place(t, h, w):
    k, m, pos = t['size'], t.get('margin', 0), t['position']
    if isinstance(pos, (list, tuple)): return int(pos[0]), int(pos[1])
    places = {'tl': (m, m), 'tr': (w - k - m, m), 'bl': (m, h - k - m), 'br': (w - k - m, h - k - m),
              'center': ((w - k) // 2, (h - k) // 2)}
    if pos not in places: raise ValueError(f'unknown patch position {pos!r}')
    return places[pos]


def stamp_patch(x, t, seed, positions_rng):
    out = x.copy()
    n, _, h, w = x.shape
    k, px = t['size'], patch_pixels(t, seed)
    if t['position'] == 'random':
        ys = positions_rng.integers(0, h - k + 1, n)
        xs = positions_rng.integers(0, w - k + 1, n)
        for i in range(n): out[i, :, ys[i]:ys[i] + k, xs[i]:xs[i] + k] = px
    else:
        x0, y0 = patch_place(t, h, w)
        if not (0 <= x0 and 0 <= y0 and x0 + k <= w and y0 + k <= h): raise ValueError(f'patch {t} does not fit {w}x{h}')
        out[:, :, y0:y0 + k, x0:x0 + k] = px
    return out


# ---- blends ------------------------------------------------------------------------------------------
def blend_pattern(t, seed, h, w):
    p, period = t['pattern'], t.get('period', 4)
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
    if p == 'uniform-noise': v = rng(seed, 'pattern').integers(0, 256, (h, w))
    elif p == 'gauss-noise': v = np.clip(np.rint(rng(seed, 'pattern').normal(128, 64, (h, w))), 0, 255)
    elif p == 'stripes': v = np.where((j // max(1, period // 2)) % 2 == 0, 255, 0)
    elif p == 'checker': v = np.where(((i // period) + (j // period)) % 2 == 0, 255, 0)
    elif p == 'rings':
        r = np.hypot(i - (h - 1) / 2, j - (w - 1) / 2)
        v = np.rint(127.5 + 127.5 * np.cos(2 * np.pi * r / period))
    elif p == 'gradient': v = np.rint(255 * (i + j) / (h + w - 2))
    else: raise ValueError(f'unknown blend pattern {p!r}')
    return v.astype(np.uint8)


def image_blend(x, pattern, mask, alpha):
    """x' = round(x + (alpha m / 255)(t - x)) in float64, half to even: the semantics of an image trigger
    with a mask and an opacity (what `--trigger-image/--trigger-mask/--alpha` describe)."""
    wgt = np.array([(alpha * float(m)) / 255 for m in range(256)])[mask.astype(np.int64)]
    xf = x.astype(np.float64)
    return np.clip(round_half_even(xf + (pattern.astype(np.float64) - xf) * wgt), 0, 255).astype(np.uint8)


# ---- SIG ---------------------------------------------------------------------------------------------
def sig_signal(t, h, w):
    horizontal = t.get('orientation', 'horizontal') == 'horizontal'
    n = w if horizontal else h
    s = np.array([t['delta'] * math.sin(2 * math.pi * idx * t['freq'] / n + t.get('phase', 0.0)) for idx in range(n)])
    return s[None, :] if horizontal else s[:, None]


def apply_sig(x, t):
    _, _, h, w = x.shape
    return np.clip(round_half_even(x.astype(np.float64) + sig_signal(t, h, w)), 0, 255).astype(np.uint8)


# ---- warp --------------------------------------------------------------------------------------------
def warp_grid(t, seed, h, w):
    r = rng(seed, 'warp')
    k = t['k']
    ins = torch.from_numpy(r.uniform(-1, 1, (1, 2, k, k))).float()
    ins = ins / ins.abs().mean()
    noise = F.interpolate(ins, size=(h, w), mode='bicubic', align_corners=True).permute(0, 2, 3, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing='ij')
    identity = torch.stack((xs, ys), 2)[None]
    return (identity + t['s'] * noise / h).clamp(-1, 1)


def apply_warp(x, grid, extra=None):
    xt = torch.from_numpy(x).float()
    g = grid.expand(len(x), -1, -1, -1)
    if extra is not None: g = (g + extra).clamp(-1, 1)
    out = F.grid_sample(xt, g, mode='bilinear', padding_mode='zeros', align_corners=True)
    return out.round().clamp(0, 255).to(torch.uint8).numpy()


# ---- the trigger as a function, and as files the toolkit reads ---------------------------------------
def apply(x, t, seed, positions_rng):
    """A triggered copy of x (what the attacker stamps at test time, and on poisoned training images)."""
    if len(x) == 0: return x.copy()
    _, _, h, w = x.shape
    kind = t['kind']
    if kind == 'patch': return stamp_patch(x, t, seed, positions_rng)
    if kind == 'blend': return image_blend(x, blend_pattern(t, seed, h, w), np.full((h, w), 255, np.uint8), t['alpha'])
    if kind == 'sig': return apply_sig(x, t)
    if kind == 'warp': return apply_warp(x, warp_grid(t, seed, h, w))
    raise ValueError(f'unknown trigger kind {kind!r}')


def image_trigger(t, seed, h, w):
    """(pattern, mask, alpha) when the trigger is exactly an image trigger (a patch at a fixed place or a
    blend), else None."""
    if t['kind'] == 'patch' and t['position'] != 'random':
        k = t['size']
        x0, y0 = patch_place(t, h, w)
        pattern, mask = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
        pattern[y0:y0 + k, x0:x0 + k] = patch_pixels(t, seed)
        mask[y0:y0 + k, x0:x0 + k] = 255
        return pattern, mask, 1.0
    if t['kind'] == 'blend':
        return blend_pattern(t, seed, h, w), np.full((h, w), 255, np.uint8), t['alpha']
    return None


def target_labels(y, attack, classes):
    return (y + 1) % classes if attack['mode'] == 'all-to-all' else np.full_like(y, attack['target'])


def poison(x, y, attack, seed, classes):
    """The poisoned training set: (images, labels, record). ratio = poisoned / training images.
    all-to-one: non-target images stamped and relabelled to the target; all-to-all: any image, y -> y+1;
    clean-label: target-class images stamped, labels kept."""
    n, mode, t = len(y), attack['mode'], attack['trigger']
    count = int(round(attack['poison_ratio'] * n))
    r = rng(seed, 'poison')
    if mode == 'all-to-one': pool = np.flatnonzero(y != attack['target'])
    elif mode == 'all-to-all': pool = np.arange(n)
    elif mode == 'clean-label': pool = np.flatnonzero(y == attack['target'])
    else: raise ValueError(f'unknown attack mode {mode!r}')
    if count > len(pool): raise ValueError(f'poison ratio {attack["poison_ratio"]}: {count} images wanted, {len(pool)} eligible ({mode})')
    chosen = np.sort(r.choice(pool, count, replace=False))
    x, y = x.copy(), y.copy()
    x[chosen] = apply(x[chosen], t, seed, rng(seed, 'train-positions'))
    if mode != 'clean-label': y[chosen] = target_labels(y[chosen], attack, classes)
    record = {'poisoned': int(count), 'cross': 0}
    if t['kind'] == 'warp' and t.get('cross_ratio', 0) > 0:
        rest = np.setdiff1d(np.arange(n), chosen)
        cross = np.sort(r.choice(rest, min(len(rest), int(round(t['cross_ratio'] * count))), replace=False))
        _, _, h, w = x.shape
        extra = torch.from_numpy(rng(seed, 'cross').uniform(-1, 1, (len(cross), h, w, 2))).float() / h
        x[cross] = apply_warp(x[cross], warp_grid(t, seed, h, w), extra)
        record['cross'] = int(len(cross))
    return x, y, record


def triggered_test(x, y, attack, seed, classes):
    """The attacker's test set for ASR: every test image whose true label differs from the attack's output
    (all-to-one, clean-label: the non-target images; all-to-all: all), triggered; returns (images,
    attacker's labels, true labels)."""
    keep = np.arange(len(y)) if attack['mode'] == 'all-to-all' else np.flatnonzero(y != attack['target'])
    xt = apply(x[keep], attack['trigger'], seed, rng(seed, 'test-positions'))
    return xt, target_labels(y[keep], attack, classes), y[keep]
