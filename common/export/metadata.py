"""Facts an exported graph carries in its ONNX metadata (written here; read by :mod:`common.models.onnx_graph`)."""
from __future__ import annotations

import json
import os

from common.models.onnx_graph import META_PREFIX, initializer_counts


def write_metadata(path: str | os.PathLike, config) -> None:
    """Label names and position limit inside the graph, so the file alone says how to feed it."""
    set_metadata(path, {
        "id2label": json.dumps({str(k): v for k, v in config.id2label.items()}),
        "max_position_embeddings": str(getattr(config, "max_position_embeddings", 512)),
    })


def set_metadata(path: str | os.PathLike, values: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update({META_PREFIX + k: v for k, v in values.items()})
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def stamp_graph_facts(path: str | os.PathLike) -> None:
    """Parameter count and quantization in the metadata: the loader then never re-reads the weights
    (which would add the whole graph to the benchmark's peak RSS)."""
    counts, quantized = initializer_counts(path)
    set_metadata(path, {"parameters": json.dumps(counts), "quantized": json.dumps(quantized)})


def copy_metadata(source: str | os.PathLike, target: str | os.PathLike) -> None:
    import onnx

    src = onnx.load(str(source), load_external_data=False)
    dst = onnx.load(str(target))
    existing = {p.key for p in dst.metadata_props}
    for prop in src.metadata_props:
        stale = prop.key in (META_PREFIX + "parameters", META_PREFIX + "quantized")
        if prop.key.startswith(META_PREFIX) and prop.key not in existing and not stale:
            entry = dst.metadata_props.add()
            entry.key, entry.value = prop.key, prop.value
    onnx.save(dst, str(target))
