"""Learns the ``visual`` projection from synthetic shopper-style photos of the *train* product lines.

  python -m services.encoders.training.visual_shopper --catalog ../shared/data/ikea/catalog.jsonl \\
      --photos ../shared/data/ikea/photos.jsonl [--out services/encoders/heads]

Why: PCA whitening of catalogue descriptors (the first ``visual`` version) only knows studio
shots; a shopper photo is the product cropped, tilted, on a room, re-lit and recompressed, so the
best query region still carries background and lighting the whitening never saw. Here each train
product's studio photo is pasted on train-part room scenes (``shopper_synth``), the 448-px photo is
cut into the same 50 GeM regions the query side uses (``visual_regions``), and the projection
(initialised at the PCA whitening) is trained with InfoNCE: the photo's score for a product is the
best region x (whole, foreground) row, as at search time, against every train product (same-line
siblings, the hardest negatives, are all in that softmax, and ``--sibling-weight`` adds a margin
term against the best-scoring sibling).

Leakage rules: products from ``homesearch.evaluation.split.make_split`` train part only (``--split
line`` is shipped; ``--split type`` gives the held-out-type numbers); room scenes by a hash of their
id (``shopper_synth.scene_part``), train part only. The real shopper photos (``photos.jsonl``) are
used only to report numbers, never to fit; they may be built on the same 84 scenes (train-part
scenes included), which the card says.

Synthetic held-out photos (``--synth-heldout N``, default 2): the real photos of held-out products
are few (33 of the line split: one photo moves Hit@1 by 0.03), so the card also reports
``synth_heldout``: N synthetic photos of every held-out product, pasted on the *other* part of the
scenes (never a training scene), with a seed of their own. Harder than the real photos (PCA ->
learned: real held-out lines 0.333 -> 0.606 Hit@1, synthetic 0.256 -> 0.403, 524 photos), but ~16x
as many: read it for differences between recipes, the real photos for the level.

Measured (200 real shopper photos vs the 1,685-photo gallery, Hit@1 / R@10; defaults, 4,265
synthetic photos): PCA whitening -> learned, all 0.515/0.755 -> 0.705/0.920, held-out lines (33)
0.333/0.636 -> 0.606/0.879; a second fit on the type split: held-out types (50) 0.420/0.680 ->
0.540/0.920. Scoring the best-cover region only (``--mode best``) lost to ``mil``.

Middle-block statistics (``--block-stats 10,14 --stats-weight 2``, stop 31): each region (and each
catalogue view) also carries the channel means and standard deviations of Lite0 blocks 10 and 14
over the same box (``models.block_stats``, the image head's blocks, so the served pass computes
them once for both). The cache holds them raw; at fitting time they are z-scored on the split's
train products and scaled so that, together, they weigh ``--stats-weight`` beside the unit GeM;
the projection then reads 1,888 inputs. Measured on the real shopper photos (same synthetic photos
and seed as a0d227b1; the weight was chosen on the photos of *train* products only, 167):
held-out lines 0.606/0.879 -> 0.727/0.939 Hit@1/R@10 (the card has the exact numbers).

Output (the ``visual`` format, ``services.encoders.models.visual``):
``<out>/visual-shop-<sha1[:8] of the weights file>/visual.json`` + ``whitening.safetensors``
{mean: (1280,), projection: (1280, 512)} float32: rows = L2((L2(gem) - mean) @ projection); with
block statistics also {stats_mean, stats_scale: (608,)}, mean (1888,), projection (1888, 512).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence, TypeVar

import numpy as np

from services.encoders.training.cli import block_list
from services.encoders.training.shopper_synth import AUGMENTS, PHOTO_SIZE, Augment, scene_part, shopper_photo
from services.encoders.training.visual_regions import (GEM_P, GRID, STRIDE, WINDOWS, best_cover, fg_crop, gem, l2n,
                                                       pad_square, regional_gem, windows)

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "heads"
VISUAL_FORMAT = "homesearch-visual/1"
FEATURE_DIM = 1280
SYNTH_EVAL_SEED = 12345  # the synthetic held-out photos' own seed (training draws from TrainConfig.seed)

T = TypeVar("T")


@dataclass
class TrainConfig:
    """Everything that decides the weights (recorded in the card)."""

    split: str = "line"
    split_seed: int = 0
    scene_seed: int = 0
    per_product: int = 3  # 2: -0.025 Hit@1; 4: visual-shop-66e46cf0; 6: shipped visual-shop-f9997530 (10.5 min on 2 cores): docs/evaluation.md
    seed: int = 1  # the shipped visual-shop-a0d227b1 was trained with these defaults
    dim: int = 512
    shrinkage: float = 0.5
    epochs: int = 8
    batch_size: int = 64
    lr: float = 3e-4
    tau: float = 0.05
    mode: str = "mil"  # mil: best region (as served); best: the region that best covers the pasted box
    sibling_weight: float = 0.0
    anchor_weight: float = 0.0  # pull towards the PCA init (|P - P0|^2 / |P0|^2)
    regions_per_step: int = 16  # mil: score a random subset of each photo's regions (+ its best-cover one); 0 = all
    negatives: int = 512  # gallery products per step: the batch's own, their siblings, random others
    augment: str = "base"  # shopper_synth.AUGMENTS: base (shipped a0d227b1) or strong
    block_stats: tuple[int, ...] = ()  # Lite0 blocks whose window statistics join the GeM (models.block_stats)
    stats_weight: float = 0.0  # the statistics' share: z-scored, times stats_weight / sqrt(their count)


# -- features -----------------------------------------------------------------------------------
class Backbone:
    """Lite0's last feature map (and the maps of ``blocks``) on ONNX Runtime (several times torch
    eager on CPU): pixels in [-1, 1]."""

    def __init__(self, threads: int = 2, blocks: Sequence[int] = ()) -> None:
        import torch

        from services.encoders.engines.onnx_engine import make_session
        from services.encoders.models.block_stats import forward_with_blocks
        from services.encoders.models.effnet_image import load_backbone

        self.blocks = tuple(int(b) for b in blocks)
        wanted = self.blocks

        class _Map(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.bb = load_backbone()

            def forward(self, x: torch.Tensor) -> Any:
                if not wanted:
                    return self.bb.extract_features(x)
                fmap, maps = forward_with_blocks(self.bb, x, wanted)
                return (fmap, *maps)

        names = ["FMAP"] + [f"BLOCK_{b}" for b in self.blocks]
        path = Path(tempfile.mkdtemp(prefix="visual-shopper-")) / "lite0_fmap.onnx"
        torch.onnx.export(_Map().eval(), (torch.zeros(1, 3, 224, 224),), str(path), input_names=["PIXELS"],
                          output_names=names, dynamic_axes={"PIXELS": {0: "b", 2: "h", 3: "w"},
                                                            **{n: {0: "b", 2: f"{n}_h", 3: f"{n}_w"} for n in names}},
                          opset_version=17, dynamo=False)
        self.session = make_session(path, intra_threads=threads)

    def __call__(self, pixels: Sequence[Any]) -> tuple[np.ndarray, list[np.ndarray]]:
        """(last maps (n, 1280, h, w), [block maps]) of a batch of pixel tensors."""
        import torch

        out = self.session.run(None, {"PIXELS": torch.stack(list(pixels)).numpy()})
        return out[0], list(out[1:])


def _with_stats(gem_rows: np.ndarray, stats: Any) -> np.ndarray:
    """``[l2(gem), raw block statistics]`` (or ``l2(gem)`` alone): what the cache holds. The
    statistics are scaled only at fitting time (``stats_normaliser``), from the train part."""
    rows = l2n(gem_rows)
    return rows if stats is None else np.concatenate([rows, stats.numpy().astype(np.float32)], axis=-1)


def global_descriptors(bb: Backbone, pixels: Sequence[Any]) -> np.ndarray:
    """(n, 1280 [+ S]) descriptors of whole photos (index side), as ``VisualHead.global_rows`` reads them."""
    import torch

    from services.encoders.models.block_stats import global_stats

    fmap, maps = bb(pixels)
    return _with_stats(gem(fmap), global_stats([torch.from_numpy(m) for m in maps]) if maps else None)


def catalogue_descriptors(catalog: list[dict], base: Path, bb: Backbone, progress: bool = True,
                          batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(whole, foreground) descriptors at 224 px (``global_descriptors``), (n, 1280 [+ S]) float32 each."""
    from PIL import Image
    from tqdm import tqdm

    whole, fg = [], []
    for i in tqdm(range(0, len(catalog), batch), desc="catalogue", disable=not progress, unit="batch"):
        ims = [Image.open(base / p["image"]).convert("RGB") for p in catalog[i : i + batch]]
        whole.append(global_descriptors(bb, [pad_square(im, 224) for im in ims]))
        fg.append(global_descriptors(bb, [pad_square(fg_crop(im), 224) for im in ims]))
    return np.concatenate(whole), np.concatenate(fg)


def photo_regions(images: Sequence[Any], bb: Backbone, size: int = 448, batch: int = 16,
                  sizes: tuple[int, ...] = WINDOWS, stride: int = STRIDE) -> np.ndarray:
    """(n, R, 1280 [+ S]) regional descriptors of photos (PIL images), padded square at ``size``:
    L2-normalised regional GeM [+ each window's block statistics, ``VisualHead.region_rows``]."""
    import torch

    from services.encoders.models.block_stats import window_stats

    grid = size // 32
    wins = windows(grid, sizes, stride)
    out = []
    for i in range(0, len(images), batch):
        fmaps, maps = bb([pad_square(im, size) for im in images[i : i + batch]])
        stats = window_stats([torch.from_numpy(m) for m in maps], grid, sizes, stride) if maps else None
        out.extend(_with_stats(regional_gem(m, wins), None if stats is None else stats[j]) for j, m in enumerate(fmaps))
    return np.stack(out).astype(np.float32)


def _one_ahead(items: Iterable[T]) -> Iterator[T]:
    """``items`` in order, the next one made in a worker thread while the caller uses this one:
    PIL (photo synthesis) and ONNX Runtime (the backbone) both release the GIL, so on 2 cores
    the synthesis of batch k+1 overlaps the forward of batch k (46.8 -> 39.8 ms a photo, same
    regions). One worker, so ``items`` still runs strictly in order (its RNG draws are unchanged)."""
    it = iter(items)
    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="synth") as pool:
        nxt = pool.submit(next, it, done)
        while (cur := nxt.result()) is not done:
            nxt = pool.submit(next, it, done)
            yield cur  # type: ignore[misc]


def _synthetic_batches(products: list[dict], base: Path, scenes: list[Any], per_product: int, seed: int,
                       batch: int, aug: Augment, bar: Any) -> Iterator[list[tuple[Any, str, int]]]:
    """Batches of (synthetic photo, product id, best-cover window) in the order one
    ``random.Random(seed)`` draws them: ``per_product`` rounds over the shuffled products."""
    from PIL import Image

    rng = random.Random(seed)
    wins = windows(GRID, WINDOWS, STRIDE)
    pending: list[tuple[Any, str, int]] = []
    for _ in range(per_product):
        order = list(products)
        rng.shuffle(order)
        for p in order:
            s = shopper_photo(Image.open(base / p["image"]), scenes[rng.randrange(len(scenes))], rng, aug=aug)
            bar.update(1)
            if s is None:
                continue
            f = GRID * 32 / PHOTO_SIZE
            pending.append((s.image, p["id"], best_cover(tuple(v * f for v in s.box), GRID * 32, wins)))  # type: ignore[arg-type]
            if len(pending) == batch:
                yield pending
                pending = []
    if pending:
        yield pending


def synth_regions(products: list[dict], base: Path, scenes: list[Any], bb: Backbone, per_product: int,
                  seed: int, progress: bool = True, batch: int = 16, aug: Augment = AUGMENTS["base"]) -> dict[str, np.ndarray]:
    """Synthetic shopper photos of ``products`` on ``scenes`` (PIL images): their 448-px regions
    (n, 50, 1280) float16, the best-cover region index and the product id of each."""
    from tqdm import tqdm

    regs: list[np.ndarray] = []
    pos: list[int] = []
    ids: list[str] = []
    bar = tqdm(total=per_product * len(products), desc="synthetic photos", disable=not progress, unit="photo")
    for chunk in _one_ahead(_synthetic_batches(products, base, scenes, per_product, seed, batch, aug, bar)):
        for r, (_, pid, p) in zip(photo_regions([x[0] for x in chunk], bb, batch=batch), chunk):
            regs.append(r.astype(np.float16))
            ids.append(pid)
            pos.append(p)
    bar.close()
    return {"regs": np.stack(regs), "pos": np.array(pos), "ids": np.array(ids)}


# -- fitting ------------------------------------------------------------------------------------
def stats_normaliser(rows: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(stats_mean, stats_scale) of the block-statistics columns of ``rows`` (train catalogue
    descriptors): each column z-scored, times ``weight / sqrt(columns)``, so the statistics weigh
    about ``weight`` beside the unit GeM whatever their count."""
    st = rows[:, FEATURE_DIM:].astype(np.float64)
    scale = weight / (st.std(0) + 1e-6) / np.sqrt(st.shape[1])
    return st.mean(0).astype(np.float32), scale.astype(np.float32)


def normalise(x: np.ndarray, stats_mean: np.ndarray | None, stats_scale: np.ndarray | None,
              chunk: int = 256) -> np.ndarray:
    """Cached descriptors -> what the projection reads (``VisualHead.whiten`` before ``mean``):
    ``l2([gem, (stats - stats_mean) * stats_scale])``. Without statistics the cached rows (already
    ``l2(gem)``) are returned as they are. Keeps the dtype (the synthetic regions stay float16);
    chunked along the first axis."""
    if stats_mean is None or stats_scale is None:
        return x
    out = np.empty(x.shape, x.dtype)
    for i in range(0, len(x), chunk):
        v = x[i : i + chunk].astype(np.float32)
        v[..., FEATURE_DIM:] = (v[..., FEATURE_DIM:] - stats_mean) * stats_scale
        out[i : i + chunk] = l2n(v)
    return out


def pca_whitening(x: np.ndarray, dim: int = 512, shrinkage: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """mean (C,), projection (C, dim): top-``dim`` principal directions divided by std**shrinkage."""
    mu = x.mean(0)
    _, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    std = s[:dim] / np.sqrt(len(x))
    return mu.astype(np.float32), (vt[:dim].T / std**shrinkage).astype(np.float32)


def _gallery_subset(targets: np.ndarray, size: int, negatives: int, rng: np.random.Generator,
                    siblings: list[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """Gallery indices for one step (the targets, their same-line siblings, then random products up
    to ``negatives``) and each target's position in it. Why: scoring every photo region against
    the whole gallery each step is most of the cost; the siblings keep the hard negatives in."""
    keep = list(dict.fromkeys(int(t) for t in targets))
    if siblings is not None:
        keep = list(dict.fromkeys(keep + [int(j) for t in targets for j in siblings[int(t)]]))
    if len(keep) < min(negatives, size):
        have = set(keep)
        rest = np.array([g for g in range(size) if g not in have])
        keep += [int(g) for g in rng.choice(rest, min(negatives, size) - len(keep), replace=False)]
    where = {g: i for i, g in enumerate(keep)}
    return np.array(keep), np.array([where[int(t)] for t in targets])


def train_projection(regs: np.ndarray, pos: np.ndarray, labels: np.ndarray, gal_whole: np.ndarray,
                     gal_fg: np.ndarray, mean0: np.ndarray, proj0: np.ndarray, cfg: TrainConfig,
                     siblings: list[np.ndarray] | None = None, progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """InfoNCE over the gallery (index ``labels`` of each photo); returns mean, projection, loss per epoch.

    Score of photo q for product g = max over q's regions r and g's rows (whole, fg) of the cosine
    of the projected, L2-normalised descriptors (``mode='mil'``, what search computes), or of the
    best-cover region only (``mode='best'``)."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    R = torch.from_numpy(np.ascontiguousarray(regs))  # kept as stored (float16): 4,900 photos x 50 x 1280 is 0.6 GB
    pos_t, tgt = torch.from_numpy(pos).long(), torch.from_numpy(labels).long()
    gw, gf = torch.from_numpy(gal_whole).float(), torch.from_numpy(gal_fg).float()
    mean = torch.nn.Parameter(torch.from_numpy(mean0).float().clone())
    proj = torch.nn.Parameter(torch.from_numpy(proj0).float().clone())
    p0 = torch.from_numpy(proj0).float().clone()
    opt = torch.optim.Adam([mean, proj], lr=cfg.lr)
    sib = None
    if siblings is not None and cfg.sibling_weight > 0:  # (G, G) bool: same line, other product
        sib = torch.zeros(len(gw), len(gw), dtype=torch.bool)
        for g, s in enumerate(siblings):
            sib[g, torch.from_numpy(s).long()] = True

    def project(x: torch.Tensor) -> torch.Tensor:
        return F.normalize((x - mean) @ proj, dim=-1)

    n, losses = len(R), []
    steps = cfg.epochs * ((n + cfg.batch_size - 1) // cfg.batch_size)
    bar = tqdm(total=steps, desc="train projection", disable=not progress, unit="step")
    for _ in range(cfg.epochs):
        perm, total = torch.from_numpy(rng.permutation(n)), 0.0
        for b in range(0, n, cfg.batch_size):
            ii = perm[b : b + cfg.batch_size]
            g_sub, t_sub = _gallery_subset(tgt[ii].numpy(), len(gw), cfg.negatives, rng, siblings)
            g_t = torch.from_numpy(g_sub).long()
            pw, pf = project(gw[g_t]), project(gf[g_t])
            t_b = torch.from_numpy(t_sub).long()
            if cfg.mode == "best":
                q = project(F.normalize(R[ii, pos_t[ii]].float(), dim=-1))
                s = torch.maximum(q @ pw.T, q @ pf.T)
            else:
                rr = R[ii]
                if 0 < cfg.regions_per_step < R.shape[1]:
                    pick = torch.from_numpy(np.stack([rng.choice(R.shape[1], cfg.regions_per_step, replace=False) for _ in ii]))
                    pick[:, 0] = pos_t[ii]
                    rr = rr.gather(1, pick[:, :, None].expand(-1, -1, R.shape[2]))
                q = project(F.normalize(rr.float(), dim=-1))
                s = torch.maximum(torch.einsum("brd,gd->brg", q, pw), torch.einsum("brd,gd->brg", q, pf)).amax(1)
            loss = F.cross_entropy(s / cfg.tau, t_b)
            if sib is not None:
                sm = sib[tgt[ii]][:, g_t]
                has = sm.any(1)
                if has.any():
                    hard = s.masked_fill(~sm, -2.0).amax(1)
                    true = s.gather(1, t_b[:, None])[:, 0]
                    loss = loss + cfg.sibling_weight * F.relu(0.05 + hard - true)[has].mean()
            if cfg.anchor_weight > 0:
                loss = loss + cfg.anchor_weight * ((proj - p0) ** 2).sum() / (p0**2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(ii)
            bar.update(1)
        losses.append(total / n)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    return mean.detach().numpy().astype(np.float32), proj.detach().numpy().astype(np.float32), losses


# -- measuring ----------------------------------------------------------------------------------
def eval_parts(catalog: list[dict], splits: Sequence[Any], scene_rows: list[dict],
               scene_seed: int) -> tuple[list[dict], list[dict]]:
    """(products held out by any of ``splits``, scenes outside the training part): what the
    synthetic held-out photos are made of. Neither is ever fitted on."""
    products = [p for p in catalog if any(s.product_part[p["id"]] != "train" for s in splits)]
    scenes = [s for s in scene_rows if scene_part(s["id"], scene_seed) != "train"]
    return products, scenes


def synth_heldout_metrics(held_regs: np.ndarray, held_ids: np.ndarray, spl: Any, index: dict[str, int],
                          gal_whole: np.ndarray, gal_fg: np.ndarray, mean: np.ndarray, proj: np.ndarray) -> dict[str, Any]:
    """Hit@1 / R@10 of the synthetic photos whose product ``spl`` holds out, on the whole gallery."""
    keep = [i for i, pid in enumerate(held_ids) if spl.product_part[str(pid)] != "train"]
    queries = [held_regs[i].astype(np.float32) for i in keep]
    return metrics(ranks(queries, [{index[str(held_ids[i])]} for i in keep], gal_whole, gal_fg, mean, proj))


def ranks(queries: Sequence[np.ndarray], relevant: Sequence[set[int]], gal_whole: np.ndarray, gal_fg: np.ndarray,
          mean: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """0-based rank of the first relevant gallery item for each query (its regions (R, 1280))."""
    pw, pf = l2n((gal_whole - mean) @ proj), l2n((gal_fg - mean) @ proj)
    out = []
    for q, rel in zip(queries, relevant):
        z = l2n((q - mean) @ proj)
        s = np.maximum(z @ pw.T, z @ pf.T).max(0)
        order = np.argsort(-s, kind="stable")
        out.append(int(np.nonzero(np.isin(order, list(rel)))[0][0]))
    return np.array(out)


def metrics(rk: np.ndarray) -> dict[str, Any]:
    return {"n": int(len(rk)), "hit@1": round(float((rk == 0).mean()), 4) if len(rk) else None,
            "recall@10": round(float((rk < 10).mean()), 4) if len(rk) else None}


# -- export -------------------------------------------------------------------------------------
def export(out: Path, mean: np.ndarray, proj: np.ndarray, card: dict[str, Any], name: str = "shop",
           stats: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Writes ``visual-<name>-<sha1[:8] of whitening.safetensors>/`` and returns it; ``stats`` =
    (stats_mean, stats_scale) of a projection that reads block statistics (``card`` then names them)."""
    from safetensors.numpy import save

    tensors = {"mean": np.ascontiguousarray(mean, np.float32), "projection": np.ascontiguousarray(proj, np.float32)}
    if stats is not None:
        tensors.update(stats_mean=np.ascontiguousarray(stats[0], np.float32), stats_scale=np.ascontiguousarray(stats[1], np.float32))
    blob = save(tensors)
    version = f"visual-{name}-{hashlib.sha1(blob).hexdigest()[:8]}"
    d = Path(out) / version
    d.mkdir(parents=True, exist_ok=True)
    (d / "whitening.safetensors").write_bytes(blob)
    full = {"format": VISUAL_FORMAT, "version": version, "gem_p": GEM_P, "index_size": 224, "query_size": GRID * 32,
            "windows": list(WINDOWS), "stride": STRIDE, "dim": int(proj.shape[1]), "weights": "whitening.safetensors", **card}
    (d / "visual.json").write_text(json.dumps(full, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return d


def fit_split(spl: Any, catalog: list[dict], feats: dict[str, np.ndarray], whole: np.ndarray, fg: np.ndarray,
              preg: np.ndarray, photos: list[dict], cfg: TrainConfig, progress: bool) -> dict[str, Any]:
    """PCA init + training on ``spl``'s train part; shopper-photo ranks of both on the whole gallery."""
    from homesearch.evaluation.split import product_line

    ids = [p["id"] for p in catalog]
    index = {p: i for i, p in enumerate(ids)}
    train = np.array([spl.product_part[p] == "train" for p in ids])
    gal = np.nonzero(train)[0]
    gpos = {int(g): i for i, g in enumerate(gal)}
    use = np.array([train[index[p]] for p in feats["syn_ids"]])
    labels = np.array([gpos[index[p]] for p in feats["syn_ids"][use]])
    lines = [product_line(catalog[g]["title"]) for g in gal]
    by_line: dict[str, list[int]] = {}
    for i, ln in enumerate(lines):
        by_line.setdefault(ln, []).append(i)
    siblings = [np.array([j for j in by_line[ln] if j != i], dtype=np.int64) for i, ln in enumerate(lines)]
    sm = ss = None
    if whole.shape[1] > FEATURE_DIM:  # block statistics: scaled from this split's train products only
        sm, ss = stats_normaliser(np.concatenate([fg[gal], whole[gal]]), cfg.stats_weight)
        whole, fg, preg = normalise(whole, sm, ss), normalise(fg, sm, ss), normalise(preg, sm, ss)
    mean0, proj0 = pca_whitening(np.concatenate([fg[gal], whole[gal]]), cfg.dim, cfg.shrinkage)
    mean, proj, losses = train_projection(normalise(feats["syn_regs"][use], sm, ss), feats["syn_pos"][use], labels,
                                          whole[gal], fg[gal], mean0, proj0, cfg, siblings, progress)
    report: dict[str, Any] = {}
    rel = [{index[p] for p in r["relevant"]} for r in photos]
    held = np.array([all(spl.product_part[p] != "train" for p in r["relevant"]) for r in photos], dtype=bool)
    for name, (m, p) in {"pca_whitening": (mean0, proj0), "learned": (mean, proj)}.items():
        if photos:
            rk = ranks(list(preg), rel, whole, fg, m, p)
            report[name] = {"all": metrics(rk), "heldout": metrics(rk[held]), "train": metrics(rk[~held])}
        if "held_regs" in feats:
            report.setdefault(name, {})["synth_heldout"] = synth_heldout_metrics(
                normalise(feats["held_regs"], sm, ss), feats["held_ids"], spl, index, whole, fg, m, p)
    return {"mean": mean, "proj": proj, "losses": losses, "labels": labels, "report": report,
            "train_products": int(train.sum()), "stats": None if sm is None else (sm, ss)}


# -- the command --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    ap = argparse.ArgumentParser(prog="python -m services.encoders.training.visual_shopper", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, required=True, help="catalog JSONL; image paths relative to it")
    ap.add_argument("--scenes", type=Path, help="room scenes JSONL (default scenes.jsonl beside the catalog)")
    ap.add_argument("--photos", type=Path, help="real shopper photos JSONL to report on (never fitted on)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"heads directory (default {DEFAULT_OUT})")
    ap.add_argument("--no-export", action="store_true", help="measure only, write nothing")
    ap.add_argument("--split", choices=["line", "type"], default=d.split, help="which train part to learn on")
    ap.add_argument("--split-seed", type=int, default=d.split_seed)
    ap.add_argument("--scene-seed", type=int, default=d.scene_seed, help="seed of the scene hash split")
    ap.add_argument("--per-product", type=int, default=d.per_product, help="synthetic photos per train product")
    ap.add_argument("--seed", type=int, default=d.seed, help="seed of the synthetic photos and of training")
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--tau", type=float, default=d.tau, help="InfoNCE temperature")
    ap.add_argument("--mode", choices=["mil", "best"], default=d.mode)
    ap.add_argument("--sibling-weight", type=float, default=d.sibling_weight)
    ap.add_argument("--anchor-weight", type=float, default=d.anchor_weight)
    ap.add_argument("--regions-per-step", type=int, default=d.regions_per_step,
                    help="mil: regions of each photo scored per step, best-cover one included (0 = all 50)")
    ap.add_argument("--augment", choices=sorted(AUGMENTS), default=d.augment,
                    help="synthetic photo augmentation (shopper_synth.AUGMENTS)")
    ap.add_argument("--negatives", type=int, default=d.negatives, help="gallery products scored per step")
    ap.add_argument("--block-stats", type=block_list, default=(), metavar="I,J",
                    help="Lite0 blocks whose channel means and standard deviations, per window, join the GeM "
                         "(e.g. 10,14, the image head's; default none)")
    ap.add_argument("--stats-weight", type=float, default=2.0,
                    help="weight of the block statistics beside the unit GeM, with --block-stats (default %(default)s)")
    ap.add_argument("--both-splits", action="store_true",
                    help="also fit the other split (line <-> type) and put its held-out numbers in the card (not shipped)")
    ap.add_argument("--synth-heldout", type=int, default=2, metavar="N",
                    help="also report N synthetic photos of every held-out product on non-training scenes "
                         "(0 = off; default %(default)s)")
    ap.add_argument("--cache", type=Path, help="npz cache of the extracted features (reused when it matches)")
    ap.add_argument("--max-products", type=int, default=0, help="use only the first N catalogue products (tests)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from homesearch.evaluation.split import load_jsonl, make_split, product_line
    from PIL import Image

    cfg = TrainConfig(split=args.split, split_seed=args.split_seed, scene_seed=args.scene_seed,
                      per_product=args.per_product, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, tau=args.tau, mode=args.mode, sibling_weight=args.sibling_weight,
                      anchor_weight=args.anchor_weight, negatives=args.negatives, regions_per_step=args.regions_per_step,
                      augment=args.augment, block_stats=args.block_stats,
                      stats_weight=args.stats_weight if args.block_stats else 0.0)
    progress, t0 = not args.quiet, time.time()
    catalog = load_jsonl(args.catalog)
    if args.max_products:
        catalog = catalog[: args.max_products]
    base = args.catalog.parent
    ids = [p["id"] for p in catalog]
    index = {p: i for i, p in enumerate(ids)}
    split = make_split(catalog, seed=cfg.split_seed, by=cfg.split)
    train = np.array([split.product_part[p] == "train" for p in ids])
    scene_rows = load_jsonl(args.scenes or base / "scenes.jsonl")
    train_scenes = [s for s in scene_rows if scene_part(s["id"], cfg.scene_seed) == "train"]
    photos = load_jsonl(args.photos) if args.photos else []
    photos = [r for r in photos if all(p in index for p in r["relevant"])]

    # one feature cache serves both splits: photos are made for every product that is train in
    # either split, and each split then trains on its own train part only
    other = make_split(catalog, seed=cfg.split_seed, by="type" if cfg.split == "line" else "line")
    synth_products = [p for p in catalog if split.product_part[p["id"]] == "train" or other.product_part[p["id"]] == "train"]
    held_products, eval_scene_rows = eval_parts(catalog, [split, other], scene_rows, cfg.scene_seed)
    recipe: list[Any] = [cfg.split_seed, cfg.scene_seed, cfg.per_product, cfg.seed]
    if cfg.augment != "base":  # base adds nothing here: its settings are the shipped recipe's
        recipe.append(asdict(AUGMENTS[cfg.augment]))
    if args.synth_heldout > 0:
        recipe.append(["synth-heldout", args.synth_heldout, SYNTH_EVAL_SEED])
    if cfg.block_stats:  # the cache holds raw statistics: the weight is applied at fitting time
        from services.encoders.models.block_stats import BLOCK_STATS_METHOD

        recipe.append(["block-stats", list(cfg.block_stats), BLOCK_STATS_METHOD])
    key = json.dumps([ids, recipe, [r["id"] for r in photos]])
    key = hashlib.sha1(key.encode()).hexdigest()
    feats: dict[str, np.ndarray] = {}
    if args.cache and args.cache.is_file():
        z = np.load(args.cache, allow_pickle=False)
        if str(z["key"]) == key:
            feats = {k: z[k] for k in z.files}
    if not feats:
        bb = Backbone(args.threads, cfg.block_stats)
        whole, fg = catalogue_descriptors(catalog, base, bb, progress)
        scenes = [Image.open(base / s["image"]).convert("RGB") for s in train_scenes]
        syn = synth_regions(synth_products, base, scenes, bb, cfg.per_product, cfg.seed, progress,
                            aug=AUGMENTS[cfg.augment])
        photo_base = args.photos.parent if args.photos else base
        preg = photo_regions([Image.open(photo_base / r["image"]) for r in photos], bb) if photos else np.zeros((0, 50, whole.shape[1]), np.float32)
        feats = {"key": np.array(key), "whole": whole, "fg": fg, "syn_regs": syn["regs"], "syn_pos": syn["pos"],
                 "syn_ids": syn["ids"], "photo_regs": preg.astype(np.float16)}
        if args.synth_heldout > 0:
            eval_scenes = [Image.open(base / s["image"]).convert("RGB") for s in eval_scene_rows]
            held_syn = synth_regions(held_products, base, eval_scenes, bb, args.synth_heldout, SYNTH_EVAL_SEED, progress)
            feats.update(held_regs=held_syn["regs"], held_ids=held_syn["ids"])
        if args.cache:
            np.savez(args.cache, **feats)
    t_feat = time.time() - t0

    whole, fg = feats["whole"].astype(np.float32), feats["fg"].astype(np.float32)
    preg = feats["photo_regs"].astype(np.float32)
    fits = {}
    for kind, spl in [(cfg.split, split)] + ([(other.version.split("-")[0], other)] if args.both_splits else []):
        t1 = time.time()
        fits[kind] = fit_split(spl, catalog, feats, whole, fg, preg, photos, cfg, progress)
        fits[kind]["seconds"] = round(time.time() - t1)
        print(json.dumps({kind: fits[kind]["report"]}, indent=1))
    mean, proj, losses = fits[cfg.split]["mean"], fits[cfg.split]["proj"], fits[cfg.split]["losses"]
    t_fit = fits[cfg.split]["seconds"]
    print(f"features {t_feat:.0f} s, fit {t_fit:.0f} s, losses {[round(x, 3) for x in losses]}", file=sys.stderr)
    if args.no_export:
        return 0
    labels = fits[cfg.split]["labels"]
    report = {f"{k}_split": {"fit_on": f"{f['train_products']} train products, {len(f['labels'])} synthetic photos",
                             **f["report"]} for k, f in fits.items()}
    card = {"metrics": {"photos": len(photos), "gallery": len(catalog), "scoring": "max over 50 query regions x (whole, foreground)",
                        "shipped_split": cfg.split, **report,
                        **({"synth_heldout": {"photos_per_product": args.synth_heldout, "seed": SYNTH_EVAL_SEED,
                                              "scenes": [s["id"] for s in eval_scene_rows],
                                              "what": "synthetic photos of the split's held-out products on "
                                                      "non-training scenes; never fitted on"}}
                           if "held_regs" in feats else {})},
            "training": {"recipe": "synthetic shopper photos of train-part products on train-part scenes, InfoNCE "
                                   "over train products (max over 50 query regions x (whole, fg)), init PCA whitening"
                                   + (f"; GeM + window statistics of blocks {list(cfg.block_stats)}, weight "
                                      f"{cfg.stats_weight}, z-scored on train products" if cfg.block_stats else ""),
                         "config": asdict(cfg), "train_products": int(train.sum()), "synthetic_photos": int(len(labels)),
                         "train_scenes": [s["id"] for s in train_scenes], "losses": losses,
                         "seconds": {"features": round(t_feat), "fit": round(t_fit)},
                         "note": "the real shopper photos may be built on the same scenes (train-part ones included)"}}
    if cfg.block_stats:
        from services.encoders.models.block_stats import block_channels, block_stats_card
        from services.encoders.models.effnet_image import load_backbone

        card["block_stats"] = block_stats_card(cfg.block_stats, block_channels(load_backbone(), cfg.block_stats))
    d = export(args.out, mean, proj, card, stats=fits[cfg.split]["stats"])
    print(d)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
