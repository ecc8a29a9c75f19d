#!/usr/bin/env bash
# Build qboson._core with AddressSanitizer + UndefinedBehaviorSanitizer and run the core tests
# against that build.  Usage, from anywhere:
#
#     tools/sanitize.sh                      # the core test files
#     tools/sanitize.sh tests/test_kernels.py -k minors   # or any pytest arguments
#
# The build goes to build/sanitize (git-ignored); the package is staged there too, so the
# regular python/qboson/_core*.so is left alone.  Python itself is not instrumented, so the
# ASan runtime must be preloaded; leak detection is off (CPython keeps memory until exit).
# Any ASan or UBSan report aborts the run with a non-zero status.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build/sanitize"
python="${PYTHON:-python}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQBOSON_SANITIZE=ON \
  -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$build" -j"${JOBS:-2}"

stage="$build/pkg"
rm -rf "$stage"
mkdir -p "$stage"
cp -r "$root/python/qboson" "$stage/"
rm -f "$stage"/qboson/_core*.so
cp "$build"/_core*.so "$stage/qboson/"

asan="$(${CXX:-g++} -print-file-name=libasan.so)"
ubsan="$(${CXX:-g++} -print-file-name=libubsan.so)"
export LD_PRELOAD="$asan $ubsan${LD_PRELOAD:+ $LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export PYTHONPATH="$stage"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

cd "$root"
if [ "$#" -eq 0 ]; then
  set -- tests/test_permanent.py tests/test_kernels.py tests/test_sampling.py tests/test_probability.py \
    tests/test_unitary.py tests/test_validation_properties.py
fi
"$python" -c "import qboson; print('sanitized build:', qboson.__file__, qboson.build_info())"
exec "$python" -m pytest -q -p no:cacheprovider "$@"
