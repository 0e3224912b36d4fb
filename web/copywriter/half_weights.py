"""Half-precision weights for decoding on CPU.

Writing one token reads every weight of the model once, so on a CPU a small language model decodes as fast as
memory hands it the weights. fbgemm's fp16-weight GEMM keeps the activations and the accumulation in fp32 and
halves the bytes read: SmolLM2-135M on 2 cores writes 80 tokens in ~3.4 s instead of ~5.9 s, and its greedy text on
the benchmark prompts is token for token the same (`bench/generate.py speed` times both in one run). Where the
kernel is missing (no fbgemm engine, a torch that dropped it) the model stays in fp32 and a log line says why.
"""
from __future__ import annotations

import logging
import warnings

import torch

log = logging.getLogger(__name__)


class HalfWeightLinear(torch.nn.Module):
    """A linear layer whose weight is packed as fp16 for fbgemm; inputs, outputs and sums stay fp32."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = torch.fbgemm_pack_gemm_matrix_fp16(linear.weight.detach().float().contiguous())
        bias = linear.bias.detach().float() if linear.bias is not None else torch.zeros(self.out_features)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fbgemm_linear_fp16_weight_fp32_activation(x, self.packed, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=fp16"


def half_weights_supported() -> bool:
    """Whether this torch build has the fbgemm fp16-weight kernel (x86 builds with fbgemm)."""
    return "fbgemm" in torch.backends.quantized.supported_engines and hasattr(torch, "fbgemm_pack_gemm_matrix_fp16")


def to_half_weights(model: torch.nn.Module) -> int:
    """Swap every `nn.Linear` of an inference-only `model` for a `HalfWeightLinear`, in place; the number swapped
    (0, the model untouched, where the kernel is missing). A tied output head gets its own fp16 copy; the
    embedding table it was tied to stays fp32 (it is looked up, not multiplied)."""
    if not half_weights_supported():
        log.info("fp16 weights need torch's fbgemm engine, which this build lacks: the language model stays fp32")
        return 0
    # torch marks the fbgemm fp16 ops deprecated (in favour of torchao) but ships them; say so once, not per call
    warnings.filterwarnings("ignore", message=r"fbgemm_\w+ is deprecated", category=UserWarning)
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(parent, name, HalfWeightLinear(child))
                swapped += 1
    return swapped
