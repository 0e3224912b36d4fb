"""The inference fast path: both towers of any encoder exported once to ONNX and run with ONNX Runtime.

Eager PyTorch pays Python and dispatcher overhead on every layer, which dominates a single query on a 2-core CPU
(bench/encode.py --runtime measures it). The export is a pure function of the model's weights, so it is cached
under the model cache with the weights' fingerprint: reused on every later start, rebuilt when the weights change.
An export is trusted only after its vectors matched eager PyTorch on a probe batch (cosine >= MIN_COSINE per item);
anything else, a missing runtime, a model the exporter cannot trace, a mismatch, falls back to eager PyTorch with
the reason logged once.

With `quantize`, each exported tower also gets an int8 twin (ONNX Runtime's dynamic quantisation of the matrix
products with constant weights, per output channel), which uses the CPU's VNNI/AMX integer units. A transformer
tower spends nearly all its time in such products (open_clip's ViT-B-32 image tower ran 3x faster), a CNN almost
none (shoplens-lite's image tower: no faster). So the twin is kept only when it passes the same cosine check as the
fp32 export *and* its forward is at least INT8_MIN_SPEEDUP times faster on the probe; the decision is written beside
the export (`<tower>.int8.json`) and not measured again for these weights.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch
from torch import nn

from indexer.files import atomic_write_text

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger(__name__)

MIN_COSINE = 0.999
INT8_MIN_SPEEDUP = 1.25  # an int8 twin that saves less than this is not worth its (small) change to the vectors
TOWERS = ("image", "text")
EXPORT_FORMAT = 1  # bump when the export itself changes, so old files are not reused
OPSET = 17


class ExportFailed(Exception):
    """The model could not be exported, or the export's vectors differ from eager PyTorch."""


@dataclass
class Towers:
    """The two exported towers: arrays in, unnormalised embeddings out."""

    image: Callable[[np.ndarray], np.ndarray]
    text: Callable[[np.ndarray], np.ndarray]
    folder: Path
    precision: dict[str, str] = field(default_factory=lambda: dict.fromkeys(TOWERS, "fp32"))


class _Image(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images)


class _Text(nn.Module):
    """The text tower without token trimming (the caller trims; trimming is data-dependent and cannot be traced)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.lite = hasattr(model, "trim_tokens")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.lite:
            return self.model.embed_text_features(self.model.text_features(tokens))
        return self.model.encode_text(tokens)


def weights_fingerprint(model: nn.Module) -> str:
    """A digest of every parameter and buffer (names, shapes, bytes) and the versions the export depends on."""
    import onnxruntime

    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{EXPORT_FORMAT}:{torch.__version__}:{onnxruntime.__version__}:{type(model).__name__}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def trim_tokens(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Tokens as the text tower takes them: trimmed of padding columns where the model can (shoplens-lite)."""
    return model.trim_tokens(tokens) if hasattr(model, "trim_tokens") else tokens


def load_towers(model: nn.Module, cache_dir: Path, image_size: tuple[int, int, int], probe_tokens: torch.Tensor,
                threads: int | None = None, quantize: bool = False) -> Towers:
    """The model's exported towers (exporting them first if this fingerprint has none), checked against eager;
    raises ExportFailed, also on later starts with the same weights, when the export is not faithful. `quantize`:
    swap in each tower's int8 twin where it is faithful and faster (see the module's docstring)."""

    model = model.eval()
    folder = Path(cache_dir) / "onnx" / weights_fingerprint(model)
    refused = folder / "REFUSED"
    if refused.is_file():  # these weights were tried before: don't pay for the export on every start
        raise ExportFailed(refused.read_text().strip())
    if not ((folder / "image.onnx").is_file() and (folder / "text.onnx").is_file()):
        # Traced on the probe's shorter texts and checked on all of them (its first is its longest), so a batch
        # size or a text width frozen into the graph cannot pass the check.
        _export(model, folder, image_size, trim_tokens(model, probe_tokens[1:]))
    eager, inputs = _probe(model, image_size, probe_tokens)
    try:
        served = {tower: _serving(folder, tower, eager[tower], inputs[tower], threads, quantize) for tower in TOWERS}
    except ExportFailed as exc:
        refused.write_text(f"{exc}\n")
        raise
    return Towers(image=served["image"][0], text=served["text"][0], folder=folder,
                  precision={tower: precision for tower, (_, precision) in served.items()})


def _serving(folder: Path, tower: str, eager: np.ndarray, inputs: np.ndarray, threads: int | None,
             quantize: bool) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """The tower as it will serve and its precision, checked against eager on the probe: with `quantize`, its int8
    twin where the recorded decision kept it and it still matches here (a copied cache on another CPU's integer
    kernels may not: fp32 then serves, with a warning); else the fp32 export, deciding about a twin first when
    no decision was recorded. Only the file that serves is loaded. ExportFailed when the fp32 export is not
    faithful."""
    record = folder / f"{tower}.int8.json"
    if quantize and record.is_file() and json.loads(record.read_text()).get("use"):
        try:
            int8 = _runner(folder / f"{tower}.int8.onnx", threads)
            _check(tower, int8, eager, inputs)
            return int8, "int8"
        except ExportFailed as exc:
            log.warning("the %s tower's int8 twin in %s is not used, fp32 serves: %s", tower, folder.name, exc)
    fp32 = _runner(folder / f"{tower}.onnx", threads)
    _check(tower, fp32, eager, inputs)
    if quantize and not record.is_file() and _int8_decision(folder, tower, fp32, eager, inputs, threads)["use"]:
        return _runner(folder / f"{tower}.int8.onnx", threads), "int8"  # checked by the decision
    return fp32, "fp32"


def _int8_decision(folder: Path, tower: str, fp32: Callable[[np.ndarray], np.ndarray], eager: np.ndarray,
                   inputs: np.ndarray, threads: int | None) -> dict:
    """Whether this tower runs as its int8 twin: read from `<tower>.int8.json`, else measured once and written.
    The twin is quantised from the checked fp32 export, checked against eager PyTorch like it, and timed
    against it on the probe, alternating runs; a twin that is not kept is deleted."""
    record, twin = folder / f"{tower}.int8.json", folder / f"{tower}.int8.onnx"
    if record.is_file():
        return json.loads(record.read_text())
    try:
        _quantize(folder / f"{tower}.onnx", twin)
        int8 = _runner(twin, threads)
        cosine = float(row_cosines(eager, int8(inputs)).min())
        speedup = _speedup(fp32, int8, inputs) if cosine >= MIN_COSINE else 0.0
        use = cosine >= MIN_COSINE and speedup >= INT8_MIN_SPEEDUP
        reason = (f"min cosine {cosine:.5f} to eager (needs {MIN_COSINE})" if cosine < MIN_COSINE else
                  f"{speedup:.2f}x the fp32 export's speed (needs {INT8_MIN_SPEEDUP}), min cosine {cosine:.5f}")
    except Exception as exc:  # the quantiser raises many kinds for graphs it cannot handle; fp32 stays
        use, cosine, speedup = False, 0.0, 0.0
        reason = f"quantisation failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    decision = {"use": use, "reason": reason, "min_cosine": round(cosine, 6), "speedup": round(speedup, 3)}
    if not use:
        twin.unlink(missing_ok=True)
    atomic_write_text(record, json.dumps(decision) + "\n")
    log.info("%s tower of %s %s int8: %s", tower, folder.name, "runs as" if use else "stays fp32, not", reason)
    return decision


def _quantize(source: Path, target: Path) -> None:
    """`target`: `source` with its constant-weight MatMuls as int8 (per output channel), written atomically."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    staging = target.with_name(f".{target.name}.{os.getpid()}")
    root = logging.getLogger()  # the quantiser logs a "run pre-processing first" hint on the root logger
    before, root.disabled = root.disabled, True
    try:
        quantize_dynamic(str(source), str(staging), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
        os.replace(staging, target)
    finally:
        root.disabled = before
        staging.unlink(missing_ok=True)


def _speedup(fp32: Callable[[np.ndarray], np.ndarray], int8: Callable[[np.ndarray], np.ndarray],
             inputs: np.ndarray, rounds: int = 5) -> float:
    """The fp32 tower's forward time over the int8 twin's: medians of alternating runs, so load hits both."""
    times: dict[Callable, list[float]] = {fp32: [], int8: []}
    for run in (fp32, int8):  # warm both (first-run allocations)
        run(inputs)
    for _ in range(rounds):
        for run in (fp32, int8):
            start = time.perf_counter()
            run(inputs)
            times[run].append(time.perf_counter() - start)
    return float(np.median(times[fp32]) / max(np.median(times[int8]), 1e-9))


def ort_session(path: Path, threads: int | None) -> "onnxruntime.InferenceSession":
    """An ONNX Runtime CPU session on `threads` intra-op threads (default torch's), fully optimised and not
    spinning; ExportFailed for a file it cannot load (truncated, foreign)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No busy-waiting between calls: a server's workers and the indexer's decode threads need those cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a truncated or foreign file
        raise ExportFailed(f"ONNX Runtime could not load {path}: {str(exc).splitlines()[0][:200]}") from exc


def _runner(path: Path, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """One exported tower as a function; refuses a graph that does not read exactly one input (a traced constant)."""
    session = ort_session(path, threads)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ExportFailed(f"the exported {path.stem} tower reads {len(inputs)} inputs, not 1 (the trace lost it)")
    name = inputs[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {name: batch})[0]

    return run


def _export(model: nn.Module, folder: Path, image_size: tuple[int, int, int], tokens: torch.Tensor) -> None:
    """Write image.onnx and text.onnx into `folder` atomically (a staging folder renamed into place)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    images = torch.randn(2, *image_size, generator=torch.Generator().manual_seed(0))
    text_axes = {0: "n", 1: "width"} if hasattr(model, "trim_tokens") else {0: "n"}
    # The wrappers must be in eval mode: the exporter restores the mode it found, recursively, when it is done, and
    # a new module is in training mode (BatchNorm would then normalise by batch statistics).
    image_tower, text_tower = _Image(model).eval(), _Text(model).eval()
    try:
        # Without grad, nn.MultiheadAttention takes its fused fast path, an operator ONNX has no spelling for (an
        # open_clip ViT failed to export with it); the plain path it traces instead computes the same thing.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), _mha_fastpath(False):
            warnings.simplefilter("ignore")  # tracer warnings about Python values: the check below is the judge
            torch.onnx.export(image_tower, (images,), str(staging / "image.onnx"), dynamo=False,
                              input_names=["images"], output_names=["vectors"], opset_version=OPSET,
                              dynamic_axes={"images": {0: "n"}, "vectors": {0: "n"}})
            torch.onnx.export(text_tower, (tokens,), str(staging / "text.onnx"), dynamo=False,
                              input_names=["tokens"], output_names=["vectors"], opset_version=OPSET,
                              dynamic_axes={"tokens": text_axes, "vectors": {0: "n"}})
        try:
            os.replace(staging, folder)
        except OSError:  # another process exported the same weights first: keep theirs
            if not folder.is_dir():
                raise
    except Exception as exc:  # the exporter raises many kinds for what it cannot trace
        raise ExportFailed(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from exc
    finally:
        if staging.exists():
            for f in staging.iterdir():
                f.unlink()
            staging.rmdir()
    log.info("exported %s's towers to ONNX in %s", type(model).__name__, folder)


@contextmanager
def _mha_fastpath(enabled: bool) -> Iterator[None]:
    """nn.MultiheadAttention's fused inference path switched on or off for the block, then restored."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def _probe(model: nn.Module, image_size: tuple[int, int, int],
           tokens: torch.Tensor) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Eager PyTorch's vectors for the probe, and the probe as the exported towers take it, per tower."""
    images = torch.rand(3, *image_size, generator=torch.Generator().manual_seed(1)) * 4 - 2
    with torch.inference_mode():
        eager = {"image": model.encode_image(images).numpy(), "text": model.encode_text(tokens).numpy()}
    return eager, {"image": images.numpy(), "text": trim_tokens(model, tokens).numpy()}


def _check(tower: str, run: Callable[[np.ndarray], np.ndarray], eager: np.ndarray, inputs: np.ndarray) -> None:
    """Refuse a tower whose vectors are not the eager model's: every probe item at cosine >= MIN_COSINE."""
    cos = row_cosines(eager, run(inputs))
    if cos.min() < MIN_COSINE:
        raise ExportFailed(f"the exported {tower} tower's vectors differ from eager PyTorch "
                           f"(min cosine {cos.min():.5f} < {MIN_COSINE})")


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cosine of each row of `a` with the same row of `b` (neither need be normalised)."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(1)
