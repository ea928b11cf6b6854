"""Generated stubs are up to date, and the protos follow buf-style lint rules.

Both parse the protos with the pinned grpc_tools.protoc (the same one
scripts/gen_protos.sh uses), so no buf binary is needed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
PROTOS = sorted(PROTO_ROOT.glob("homesearch/v1/*.proto"))
GENERATED = ROOT / "homesearch" / "v1"


def _protoc(*args: str) -> None:
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", *args, *map(str, PROTOS)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"protoc failed:\n{proc.stderr}"


def test_protos_exist() -> None:
    assert {p.name for p in PROTOS} >= {"search.proto", "ranking.proto"}


def test_generated_stubs_are_up_to_date(tmp_path: Path) -> None:
    _protoc(f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}")
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*") if p.is_file())
    assert fresh, "protoc generated nothing"
    stale = [
        str(rel) for rel in fresh
        if not (GENERATED.parent.parent / rel).exists()
        or (GENERATED.parent.parent / rel).read_bytes() != (tmp_path / rel).read_bytes()
    ]
    assert not stale, f"stubs out of date (run scripts/gen_protos.sh): {stale}"


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    out = tmp_path_factory.mktemp("desc") / "set.pb"
    _protoc(f"--descriptor_set_out={out}", "--include_source_info")
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    return fds


def _comments(fd: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    return {tuple(loc.path): loc.leading_comments.strip() for loc in fd.source_code_info.location}


# FileDescriptorProto / DescriptorProto / ServiceDescriptorProto / EnumDescriptorProto field numbers.
_MSG, _SVC, _ENUM_TOP = 4, 6, 5
_FIELD, _NESTED, _ENUM_NESTED = 2, 3, 4
_METHOD, _ENUM_VALUE = 2, 2


def _lint(fd: descriptor_pb2.FileDescriptorProto) -> list[str]:
    problems: list[str] = []
    comments = _comments(fd)

    def need(path: tuple[int, ...], what: str) -> None:
        if not comments.get(path):
            problems.append(f"{fd.name}: {what} has no leading comment")

    def enum(e: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], scope: str) -> None:
        need(path, f"enum {scope}{e.name}")
        zero = [v for v in e.value if v.number == 0]
        if not zero or not zero[0].name.endswith("_UNSPECIFIED"):
            problems.append(f"{fd.name}: enum {scope}{e.name} zero value must be named *_UNSPECIFIED")
        for i, v in enumerate(e.value):
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", v.name):
                problems.append(f"{fd.name}: enum value {v.name} is not UPPER_SNAKE_CASE")

    def message(m: descriptor_pb2.DescriptorProto, path: tuple[int, ...], scope: str) -> None:
        if m.options.map_entry:
            return
        name = f"{scope}{m.name}"
        need(path, f"message {name}")
        if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", m.name):
            problems.append(f"{fd.name}: message {name} is not PascalCase")
        for i, f in enumerate(m.field):
            need((*path, _FIELD, i), f"field {name}.{f.name}")
            if not re.fullmatch(r"[a-z][a-z0-9_]*", f.name):
                problems.append(f"{fd.name}: field {name}.{f.name} is not lower_snake_case")
        for i, nested in enumerate(m.nested_type):
            message(nested, (*path, _NESTED, i), f"{name}.")
        for i, e in enumerate(m.enum_type):
            enum(e, (*path, _ENUM_NESTED, i), f"{name}.")

    expected_pkg = str(Path(fd.name).parent).replace("/", ".")
    if fd.package != expected_pkg:
        problems.append(f"{fd.name}: package {fd.package!r} does not match its directory ({expected_pkg!r})")
    if not re.search(r"\.v\d+((alpha|beta)\d*)?$", fd.package):
        problems.append(f"{fd.name}: package {fd.package!r} is not versioned (…v1, …v1beta1)")
    for i, m in enumerate(fd.message_type):
        message(m, (_MSG, i), "")
    for i, e in enumerate(fd.enum_type):
        enum(e, (_ENUM_TOP, i), "")
    for i, s in enumerate(fd.service):
        need((_SVC, i), f"service {s.name}")
        if not s.name.endswith("Service"):
            problems.append(f"{fd.name}: service {s.name} should end in 'Service'")
        for j, rpc in enumerate(s.method):
            need((_SVC, i, _METHOD, j), f"rpc {s.name}.{rpc.name}")
    return problems


def test_buf_style_lint(descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
    ours = [fd for fd in descriptor_set.file if fd.name.startswith("homesearch/")]
    assert {Path(fd.name).name for fd in ours} == {p.name for p in PROTOS}
    problems = [p for fd in ours for p in _lint(fd)]
    if problems:
        pytest.fail("proto lint:\n" + "\n".join(problems), pytrace=False)


def test_lint_catches_problems() -> None:
    """The checker itself works: a bad file yields each kind of problem."""
    fd = descriptor_pb2.FileDescriptorProto(name="homesearch/v1/bad.proto", package="homesearch")
    m = fd.message_type.add(name="thing")
    m.field.add(name="BadName", number=1)
    e = fd.enum_type.add(name="Color")
    e.value.add(name="RED", number=0)
    problems = "\n".join(_lint(fd))
    for needle in ("does not match its directory", "not versioned", "message thing has no leading comment",
                   "field thing.BadName has no leading comment", "not lower_snake_case", "not PascalCase",
                   "*_UNSPECIFIED"):
        assert needle in problems, needle
