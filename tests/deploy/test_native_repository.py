"""The onnxruntime-backend repository for NVIDIA's tritonserver image, checked without that image.

NVIDIA's container (native onnxruntime backend) cannot run here, so the rendered repository is
checked the way Triton would load it: every config parses as a ModelConfig; each ensemble step
names a model of the repository and maps only tensors that model declares; every ensemble
tensor is produced before it is consumed; the ensembles keep the client protocol of the
embedded models; the onnx models' declared inputs/outputs are exactly the exported graphs'
(read from the graphs with ONNX Runtime), and their model.onnx resolves to the cached graph.
"""

from __future__ import annotations

import py_compile
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, object]:
    from services.encoders.serving.config import TritonSettings
    from services.encoders.serving.native_repository import render_native_repository

    target = tmp_path_factory.mktemp("native") / "repo"
    return target, render_native_repository(TritonSettings(serving_backend="onnxruntime"), target, kind="KIND_GPU",
                                            portable=True)


def _configs(repo: Path) -> dict[str, mc.ModelConfig]:
    return {p.parent.name: text_format.Parse(p.read_text(), mc.ModelConfig()) for p in sorted(repo.glob("*/config.pbtxt"))}


def test_ensembles_wire_only_declared_tensors(rendered):
    repo, _ = rendered
    cfgs = _configs(repo)
    ensembles = [n for n, c in cfgs.items() if c.platform == "ensemble"]
    assert sorted(ensembles) == ["image_encoder", "text_encoder"]
    for name in ensembles:
        ens = cfgs[name]
        available = {t.name for t in ens.input}
        for step in ens.ensemble_scheduling.step:
            model = cfgs[step.model_name]  # KeyError = a step names a missing model
            assert set(step.input_map) == {t.name for t in model.input}, (name, step.model_name)
            assert set(step.input_map.values()) <= available, (name, step.model_name, "consumed before produced")
            assert set(step.output_map) <= {t.name for t in model.output}, (name, step.model_name)
            available |= set(step.output_map.values())
        assert {t.name for t in ens.output} <= available


def test_ensembles_keep_the_client_protocol_and_identity(rendered):
    from services.encoders.serving.config import TritonSettings
    from services.encoders.serving.repository import TEMPLATE_DIR

    repo, r = rendered
    cfgs = _configs(repo)
    spec = TritonSettings(serving_backend="onnxruntime").model_spec()
    assert spec.text_precision == "fp32"  # auto: int8 runs text by text, which only the python backend does
    for name, version in (("text_encoder", spec.text_version()), ("image_encoder", spec.image_version())):
        embedded = text_format.Parse((TEMPLATE_DIR / name / "config.pbtxt").read_text(), mc.ModelConfig())
        native = cfgs[name]
        # the embedded image_encoder also takes the optional VISUAL_MODE of the visual descriptor, which
        # this repository does not serve yet: it declares no visual_version, so clients never send it
        required = [(t.name, t.data_type) for t in embedded.input if not t.optional]
        assert [(t.name, t.data_type) for t in native.input] == required
        assert not native.parameters["visual_version"].string_value
        assert [t.name for t in native.output] == ["EMBEDDING"] and list(native.output[0].dims) == [r.dim]
        assert native.parameters["model_version"].string_value == version
        assert native.parameters["embedding_dim"].string_value == str(r.dim)


def test_onnx_models_declare_exactly_the_graphs_tensors(rendered):
    import onnxruntime as ort

    repo, _ = rendered
    cfgs = _configs(repo)
    for name in ("text_onnx", "image_onnx"):
        cfg = cfgs[name]
        assert cfg.backend == "onnxruntime"
        assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
        graph = (repo / name / "1" / "model.onnx").resolve()
        assert graph.is_file() and graph.name == "model.onnx"
        sess = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        assert {i.name for i in sess.get_inputs()} == {t.name for t in cfg.input}
        assert {o.name for o in sess.get_outputs()} >= {t.name for t in cfg.output}
        for i in sess.get_inputs():  # batch axis dynamic, the rest as declared
            declared = next(t for t in cfg.input if t.name == i.name)
            assert len(i.shape) == 1 + len(declared.dims)
            assert [d for d in i.shape[1:] if isinstance(d, int)] == [d for d in declared.dims if d > 0]
    assert cfgs["text_onnx"].parameters["intra_op_thread_count"].string_value == "1"  # latency default


def test_python_steps_stand_alone_and_compile(rendered):
    repo, _ = rendered
    for name in ("text_tokenize", "image_preprocess"):
        src = repo / name / "1" / "model.py"
        py_compile.compile(str(src), doraise=True)
        text = src.read_text()
        assert "class TritonPythonModel" in text and "def execute" in text
        assert _configs(repo)[name].instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU


def test_embedded_server_refuses_the_native_backend():
    from services.encoders.serving.launcher import TritonServer, UnsupportedPlatformError

    with pytest.raises(UnsupportedPlatformError, match="only the python backend"):
        TritonServer(serving_backend="onnxruntime").start()


def test_compose_and_k8s_select_the_native_backend():
    import yaml

    root = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    for svc in ("triton", "triton-cpu"):
        assert compose["services"][svc]["environment"]["HOMESEARCH_TRITON_SERVING_BACKEND"] == "onnxruntime"
    k8s = (root / "deploy/k8s/triton.yaml").read_text()
    assert "HOMESEARCH_TRITON_SERVING_BACKEND, value: onnxruntime" in k8s
