"""LiT-style contrastive training of the image projection head against the frozen e5 text tower.

Recipe (docs/architecture.md, "Models", head training recipe): cached 1280-d pooled features of
five views per product (z-scored with train statistics), three captions per product embedded as
e5 passages, MLP 1280->2048 (GELU, dropout 0.5)->384, symmetric InfoNCE with a learnable
temperature initialised at 0.07, products with the same (colour, category) in a batch count as
positives, AdamW lr 1e-3 one-cycle, weight decay 0.5, batch 256, 100 epochs. Each epoch every
training product contributes one random view and one random caption.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from services.encoders.training import features as F
from services.encoders.training.head import ProjectionHead


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.5
    hidden: int = 2048
    dropout: float = 0.5
    init_temperature: float = 0.07
    seed: int = 0
    backbone: str = "lite0"
    train_views: tuple[int, ...] = (0, 1, 2, 3, 4)
    eval_views: tuple[int, ...] = F.EVAL_VIEWS
    colour_hist_bins: int = 0  # >0: concatenate a bins^3 colour histogram to the CNN features
    block_stats: tuple[int, ...] = ()  # backbone blocks whose channel mean/std join the features (models.block_stats)
    caption_kinds: tuple[str, ...] = ("colour_category", "category_colour", "colour_category_description")
    positives: str = "colour_category"  # "caption" = identical caption text only; "none" = diagonal only
    threads: int = 2


# ----------------------------------------------------------------------------- captions
def colour_of(p: dict) -> str:
    return str((p.get("attributes") or {}).get("color", "") or "").strip().lower()


def category_of(p: dict) -> str:
    return str(p.get("category") or "").strip().lower()


def captions(p: dict, kinds: Sequence[str]) -> list[str]:
    """Caption texts (the "passage: " prefix is added by the text tower)."""
    col, cat, desc = colour_of(p), category_of(p), str(p.get("description") or "").strip()
    out = []
    for k in kinds:
        if k == "colour_category":
            out.append(f"{col} {cat}".strip())
        elif k == "category_colour":
            out.append(f"{cat}, {col}" if col else cat)
        elif k == "colour_category_description":
            out.append(f"{col} {cat}. {desc}".strip(" ."))
        elif k == "title":
            out.append(p["title"])
        else:
            raise ValueError(f"unknown caption kind {k!r}")
    return out


def product_text(p: dict) -> str:
    """The product's text passage (what the text index embeds): title, description, attributes."""
    attrs = "; ".join(f"{k}: {v}" for k, v in (p.get("attributes") or {}).items())
    return ". ".join(x for x in (p.get("title", ""), p.get("category", ""), p.get("description", ""), attrs) if x)


# ----------------------------------------------------------------------------- data
def image_inputs(products: Sequence[dict], catalog_dir: Path, cfg: TrainConfig, progress: bool = True) -> np.ndarray:
    """(N, views, D) inputs to the head (backbone features, optionally + block statistics, + colour histogram)."""
    v = F.extract_views(products, catalog_dir, cfg.backbone, progress=progress, blocks=cfg.block_stats)
    if cfg.colour_hist_bins:
        h = F.extract_colour_histograms(products, catalog_dir, cfg.colour_hist_bins)
        v = np.concatenate([v, np.repeat(h[:, None, :], v.shape[1], 1)], axis=2)
    return v


def eval_inputs(views: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    return views[:, list(cfg.eval_views)].mean(1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_head(
    views: np.ndarray,
    cap_emb: np.ndarray,
    pos_keys: Sequence[str],
    cfg: TrainConfig,
    progress: bool = True,
    eval_fn=None,
) -> tuple[ProjectionHead, list[dict]]:
    """views (N, V, D); cap_emb (N, C, 384) caption embeddings; pos_keys[i]: products with equal keys
    in a batch are positives of each other. Returns the trained head (eval mode) and a log."""
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    X = torch.from_numpy(views[:, list(cfg.train_views)].astype(np.float32))
    Y = torch.from_numpy(cap_emb.astype(np.float32))
    n, nv, d = X.shape
    flat = X.reshape(-1, d)
    mean, std = flat.mean(0), flat.std(0).clamp_min(1e-6)
    head = ProjectionHead(d, cfg.hidden, Y.shape[-1], cfg.dropout, mean, std)
    with torch.no_grad():
        head.logit_scale.fill_(float(np.log(1 / cfg.init_temperature)))
    keys = {k: i for i, k in enumerate(sorted(set(pos_keys)))}
    key_ids = torch.tensor([keys[k] for k in pos_keys])
    steps_per_epoch = max(1, -(-n // cfg.batch_size))
    decay = [p for nme, p in head.named_parameters() if nme.endswith("weight")]
    no_decay = [p for nme, p in head.named_parameters() if not nme.endswith("weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    log: list[dict] = []
    bar = tqdm(range(cfg.epochs), desc="train", disable=not progress, unit="epoch")
    for epoch in bar:
        head.train()
        perm = torch.randperm(n, generator=g)
        vsel = torch.randint(0, nv, (n,), generator=g)
        csel = torch.randint(0, Y.shape[1], (n,), generator=g)
        tot = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            if len(idx) < 2:
                continue
            img = head(X[idx, vsel[idx]])
            txt = Y[idx, csel[idx]]
            logits = head.logit_scale.exp().clamp(max=100) * img @ txt.T
            if cfg.positives == "none":
                tgt = torch.eye(len(idx))
            else:
                k = key_ids[idx]
                tgt = (k[:, None] == k[None, :]).float()
            tgt = tgt / tgt.sum(1, keepdim=True)
            loss = 0.5 * (
                torch.sum(-tgt * torch.log_softmax(logits, 1), 1).mean()
                + torch.sum(-tgt.T / tgt.T.sum(1, keepdim=True) * torch.log_softmax(logits.T, 1), 1).mean()
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach())
        entry = {"epoch": epoch + 1, "loss": round(tot / steps_per_epoch, 4), "temperature": round(float(1 / head.logit_scale.detach().exp()), 4)}
        if eval_fn is not None and ((epoch + 1) % 25 == 0 or epoch + 1 == cfg.epochs):
            head.eval()
            entry.update(eval_fn(head))
        log.append(entry)
        bar.set_postfix(loss=entry["loss"])
    return head.eval(), log


@torch.no_grad()
def embed_images(head: ProjectionHead, inputs: np.ndarray) -> np.ndarray:
    head.eval()
    return head(torch.from_numpy(inputs.astype(np.float32))).numpy()


def config_hash(cfg: TrainConfig, extra: str = "") -> str:
    return hashlib.sha1((json.dumps(asdict(cfg), sort_keys=True) + extra).encode()).hexdigest()[:8]
