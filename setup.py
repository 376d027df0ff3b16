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
        f"--pyi_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        _gen_protos()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
