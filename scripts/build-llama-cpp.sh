#!/usr/bin/env bash
# Builds llama.cpp for the embedded engine: `llama-server` (the engine process the server
# supervises) and the shared libraries llama-cpp-python loads for tokenizing, from the very
# llama.cpp that the pinned llama-cpp-python sdist vendors. One build serves both.
#
#   scripts/build-llama-cpp.sh PYTHON DEST
#
# PYTHON is the venv's interpreter (its pip fetches the sdist); DEST receives `llama-server`
# and the `.so` files side by side, `build-info.txt`, and a wheel of llama-cpp-python's
# Python part alone (built with `-DLLAMA_BUILD=OFF`: it loads these libraries, through
# `LLAMA_CPP_LIB_PATH`, instead of compiling llama.cpp a second time).
#
# Portable by default: on x86-64 the CPU code is built for AVX2/FMA/F16C (every x86-64 CPU
# since 2013-2015), never `-march=native`, so a build made on one machine runs on another
# and never takes code paths (AMX, AVX512-BF16) that a particular CPU advertises but that
# crashed in practice. On arm64 the compiler's baseline is used.
#   LLAMA_NATIVE=1        build for this machine's CPU (`-DGGML_NATIVE=ON`) instead
#   LLAMA_CMAKE_ARGS=...  more CMake flags, e.g. "-DGGML_CUDA=ON" for an NVIDIA GPU
#
# The result is cached under $PERSONAE_BUILD_CACHE (default ~/.cache/personae) in a folder
# named by a hash of everything that shapes the binary (version, architecture, compiler and
# flags), so a build made with other flags is never reused by mistake.
set -euo pipefail

python=$1
dest=$2
# The version pinned in pyproject.toml, so the binary and the Python binding always match.
version=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml | head -n 1)
arch=$(uname -m)

flags=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON "-DCMAKE_BUILD_RPATH=\$ORIGIN"
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_CCACHE=OFF)
if [ "${LLAMA_NATIVE:-0}" = 1 ]; then
  flags+=(-DGGML_NATIVE=ON)
  mode=native
else
  flags+=(-DGGML_NATIVE=OFF)
  case $arch in
    x86_64 | amd64)
      flags+=(-DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON
        -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF) ;;
  esac
  mode=portable
fi
# shellcheck disable=SC2206  # word splitting is the point: several flags in one variable
flags+=(${LLAMA_CMAKE_ARGS:-})

compiler=$( (c++ --version 2>/dev/null || echo none) | head -n 1)
key=$(printf '%s\n' "$version" "$arch" "$compiler" "${flags[@]}" \
  | { sha256sum 2>/dev/null || shasum -a 256; } | cut -c1-16)
cache=${PERSONAE_BUILD_CACHE:-$HOME/.cache/personae}/llama.cpp/$version-$mode-$key

if [ ! -x "$cache/llama-server" ] || ! compgen -G "$cache/llama_cpp_python-*.whl" >/dev/null; then
  echo "Building llama.cpp $version ($mode, $arch) for the embedded engine; a few minutes, once per machine and flag set."
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    --dest "$work" "llama-cpp-python==$version"
  tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
  src=$work/llama_cpp_python-$version/vendor/llama.cpp
  cmake -S "$src" -B "$work/build" "${flags[@]}" >"$work/configure.log" 2>&1 \
    || { tail -n 40 "$work/configure.log"; exit 1; }
  cmake --build "$work/build" --target llama-server -j "$(nproc 2>/dev/null || echo 2)" \
    >"$work/build.log" 2>&1 || { tail -n 60 "$work/build.log"; exit 1; }
  rm -rf "$cache.tmp"
  mkdir -p "$cache.tmp"
  CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" "$python" -m pip wheel --quiet \
    --disable-pip-version-check --no-deps --no-cache-dir --wheel-dir "$cache.tmp" \
    "$work"/llama_cpp_python-"$version".tar.gz
  shopt -s nullglob
  libraries=("$work"/build/bin/*.so* "$work"/build/bin/*.dylib)
  cp -a "$work/build/bin/llama-server" "${libraries[@]}" "$cache.tmp/"
  printf 'llama-cpp-python %s\nmode %s\narch %s\ncompiler %s\nflags %s\n' \
    "$version" "$mode" "$arch" "$compiler" "${flags[*]}" >"$cache.tmp/build-info.txt"
  rm -rf "$cache"
  mv "$cache.tmp" "$cache"
fi

rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
cp -a "$cache" "$dest"
echo "llama.cpp $version ($mode) in $dest"
