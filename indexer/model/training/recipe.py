"""What decides the trained heads, as plain data: the CLI reads its defaults without loading torch."""
from __future__ import annotations

from dataclasses import dataclass, field

HEADS_FILE = "shoplens-lite.pt"


@dataclass
class Recipe:
    """Everything that decides the trained heads (recorded in the checkpoint and the model card)."""

    text: str = "mixed"  # "title", "title+attributes", or "mixed": a coin flip per product and epoch
    head: str = "mlp"
    embed_dim: int = 256
    batch_size: int = 2048
    lr: float = 2e-3
    weight_decay: float = 0.05
    feature_dropout: float = 0.1
    aux: bool = True  # the image head also reads the aux features
    max_epochs: int = 40
    patience: int = 4
    seed: int = 0
    holdout: float = 0.1
    val: float = 0.05
    max_train: int | None = None  # train/validate on the first N catalog rows only (the test split is unchanged)
    # Adaptation (`shoplens adapt`) starts from trained heads and keeps near them: L2 pull of every head weight
    # towards its starting value (L2-SP, Li et al. 2018), and a contrastive term between a product's clean image and
    # an augmented view of it (its weight; 0 or no views: off).
    anchor: float = 0.0
    view_weight: float = 0.0
    # After training, the heads served are a weight-space mix of the starting and the trained heads (WiSE-FT,
    # Wortsman et al. 2022): the least trained share on the grid that keeps `keep_gain` of the validation gain
    # (1.0: the trained heads as they are).
    keep_gain: float = 1.0
    extra: dict = field(default_factory=dict)

    def overrides(self) -> dict:
        return {"embed_dim": self.embed_dim, "vision_cfg": {"timm_proj": self.head},
                "text_cfg": {"hf_proj_type": self.head}}
