"""Build hook only: generate protobuf/gRPC stubs from protos/ before build_py.

Metadata lives in pyproject.toml. The stubs land in attribution/v1/ and are not committed.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _gen_protos() -> None:
    import importlib.resources

    from grpc_tools import protoc

    proto_root = ROOT / "protos"
    protos = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))
    include = importlib.resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{proto_root}",
        f"-I{include}",
        f"--python_out={ROOT}",
        f"--grpc_python_out={ROOT}",
    ]
    # typed stubs for messages and services (mypy-protobuf, a build requirement); fall
    # back to protoc's own message stubs if its plugins are not on PATH
    mypy_plugin = _plugin("protoc-gen-mypy")
    grpc_plugin = _plugin("protoc-gen-mypy_grpc")
    if mypy_plugin and grpc_plugin:
        args += [
            f"--plugin=protoc-gen-mypy={mypy_plugin}",
            f"--plugin=protoc-gen-mypy_grpc={grpc_plugin}",
            f"--mypy_out={ROOT}",
            f"--mypy_grpc_out={ROOT}",
        ]
    else:
        args.append(f"--pyi_out={ROOT}")
    args += protos
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def _plugin(name: str) -> str | None:
    import shutil
    import sys

    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        _gen_protos()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
