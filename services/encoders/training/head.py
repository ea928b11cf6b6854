"""The image projection head being trained, and writing it in the serving format.

The on-disk format is the one ``services.encoders.models.image_head`` reads (its docstring is the
reference): a directory ``services/encoders/heads/<version>/`` holding

* ``head.json``: ``{"format": "homesearch-image-head/1", "version", "backbone",
  "text_model", "architecture": {"type": "mlp", "input_dim": 1280, "hidden_dim": 2048,
  "activation": "gelu", "output_dim": 384}, "feature_norm": {"mean": [...], "std": [...]},
  "pixels": {"size": 224, "mean": [0.5]*3, "std": [0.5]*3}, "weights": "head.safetensors",
  "metrics": {...}}`` plus this project's model-card fields (data, split, settings, timings);
* ``head.safetensors``: exactly ``fc1.weight`` (2048, 1280), ``fc1.bias``, ``fc2.weight``
  (384, 2048), ``fc2.bias`` (float16 by default; loaded into float32 modules). z-scoring lives in the card; the learned temperature and
  dropout are training-only.

Serving: (pooled - mean) / std -> fc1 -> GELU (exact erf) -> fc2 -> L2 normalise.

With a zero-shot (ConSE) part attached (:meth:`ProjectionHead.attach_zero_shot`, fitted by
``training.zero_shot``) the file also holds ``zs_fc.weight``/``zs_fc.bias`` (ImageNet classifier
rows) and ``zs_emb`` (class-name e5 embeddings), the card a ``zero_shot`` block, and the vector is
normalise(normalise(mlp) + mix * normalise(softmax(zs_fc(pooled) / t) @ zs_emb)), as served.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

HEAD_FORMAT = "homesearch-image-head/1"


class ProjectionHead(nn.Module):
    def __init__(self, in_dim: int = 1280, hidden: int = 2048, out_dim: int = 384, dropout: float = 0.5,
                 feature_mean: torch.Tensor | None = None, feature_std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(in_dim) if feature_mean is None else feature_mean.float())
        self.register_buffer("feature_std", torch.ones(in_dim) if feature_std is None else feature_std.float())
        self.fc1 = nn.Linear(in_dim, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(1 / 0.07)))))
        self.zero_shot: dict = {}  # card block of the attached ConSE part; {} = none

    def attach_zero_shot(self, fc_weight: torch.Tensor, fc_bias: torch.Tensor, class_emb: torch.Tensor,
                         card: dict) -> None:
        """Adds the ConSE part (frozen tensors; ``card``: method, temperature, mix, feature_dim, ...)."""
        self.register_buffer("zs_fc_weight", fc_weight.float().contiguous())
        self.register_buffer("zs_fc_bias", fc_bias.float().contiguous())
        self.register_buffer("zs_emb", class_emb.float().contiguous())
        self.zero_shot = {**card, "classes": int(fc_weight.shape[0])}

    def zero_shot_vectors(self, feats: torch.Tensor) -> torch.Tensor:
        zs = self.zero_shot
        logits = feats[:, : int(zs["feature_dim"])] @ self.zs_fc_weight.T + self.zs_fc_bias
        p = torch.softmax(logits / float(zs["temperature"]), dim=-1)
        return nn.functional.normalize(p @ self.zs_emb, dim=-1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = (feats - self.feature_mean) / self.feature_std
        x = nn.functional.normalize(self.fc2(self.drop(nn.functional.gelu(self.fc1(x)))), dim=-1)
        if self.zero_shot:
            x = x + float(self.zero_shot["mix"]) * self.zero_shot_vectors(feats)
        return nn.functional.normalize(x, dim=-1)


def save_head(head: ProjectionHead, directory: Path, card: dict, dtype: torch.dtype = torch.float16) -> Path:
    """Writes ``head.safetensors`` + ``head.json`` (serving format + model card fields).

    Weights are stored as float16 by default (6.8 MB instead of 13.6 MB; the loader's
    ``load_state_dict`` casts them back to float32; embedding cosine vs fp32 > 0.9999)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    sd = head.state_dict()
    names = {k: k for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")}
    if head.zero_shot:  # stored under the serving names (image_head.ZeroShotPart)
        names.update({"zs_fc.weight": "zs_fc_weight", "zs_fc.bias": "zs_fc_bias", "zs_emb": "zs_emb"})
    tensors = {out: sd[k].detach().to(dtype).contiguous() for out, k in names.items()}
    save_file(tensors, str(directory / "head.safetensors"), metadata={"format": HEAD_FORMAT, "version": str(card["version"])})
    (directory / "head.safetensors").chmod(0o644)
    full = {
        "format": HEAD_FORMAT,
        "architecture": {"type": "mlp", "input_dim": int(head.fc1.in_features), "hidden_dim": int(head.fc1.out_features),
                         "activation": "gelu", "output_dim": int(head.fc2.out_features)},
        "feature_norm": {"mean": [float(x) for x in head.feature_mean], "std": [float(x) for x in head.feature_std]},
        "weights": "head.safetensors",
        **({"zero_shot": head.zero_shot} if head.zero_shot else {}),
        **card,
    }
    (directory / "head.json").write_text(json.dumps(full, indent=1, sort_keys=True) + "\n")
    return directory


def load_head(directory: Path) -> tuple[ProjectionHead, dict]:
    """Reads a head directory written by :func:`save_head` -> (eval-mode head, card)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    card = json.loads((directory / "head.json").read_text())
    if card.get("format") != HEAD_FORMAT:
        raise ValueError(f"{directory}: not a {HEAD_FORMAT} head (format={card.get('format')!r})")
    a = card["architecture"]
    norm = card["feature_norm"]
    head = ProjectionHead(a["input_dim"], a["hidden_dim"], a["output_dim"], 0.0,
                          torch.tensor(norm["mean"]), torch.tensor(norm["std"]))
    state = load_file(str(directory / card.get("weights", "head.safetensors")))
    if card.get("zero_shot"):
        head.attach_zero_shot(state.pop("zs_fc.weight"), state.pop("zs_fc.bias"), state.pop("zs_emb"), card["zero_shot"])
    missing, unexpected = head.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"feature_mean", "feature_std", "logit_scale", "zs_fc_weight", "zs_fc_bias", "zs_emb"}:
        raise ValueError(f"{directory}: weights do not match: missing={missing} unexpected={unexpected}")
    return head.eval(), card
