"""Property test: opening a bank whose files are random or corrupted either works or raises BankError/ValueError.

Never another exception (TypeError, KeyError, OverflowError, ...), never a crash.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from qboson.latent import Bank, generate_bank, make  # noqa: E402

KEYS = ["format", "format_version", "kind", "dim", "seed", "spec", "fingerprint", "dtype", "shots", "data_file",
        "sha256", "chunk_size", "normalisation", "target_shots", "normalisation.mean", "normalisation.std",
        "normalisation.centre", "normalisation.scale", "spec.dim", "spec.seed", "extra"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# edits of the good metadata: (key, delete it?, new value)
meta_edits = st.lists(st.tuples(st.sampled_from(KEYS), st.booleans(), json_values), min_size=1, max_size=3)
meta_files = st.one_of(
    meta_edits,
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
)
data_files = st.one_of(
    st.just(("good",)),
    st.binary(max_size=300).map(lambda b: ("bytes", b)),
    st.floats(0, 1).map(lambda f: ("truncate", f)),
    st.tuples(st.floats(0, 1), st.integers(1, 255)).map(lambda t: ("flip", *t)),
    st.tuples(st.lists(st.integers(-5, 2**62), max_size=3), st.sampled_from(["|u1", "<f8", "<i4", "|b1", "<c16"]),
              st.binary(max_size=64)).map(lambda t: ("header", *t)),
)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return generate_bank(make("quantum", dim=4, seed=5), 40, tmp_path_factory.mktemp("fuzz") / "bank", chunk_size=16).path


def _meta_bytes(good_meta: dict, spec) -> bytes:
    if isinstance(spec, bytes):
        return spec
    meta = json.loads(json.dumps(good_meta))
    for key, delete, value in spec:
        target, name = (meta, key) if "." not in key else (meta.get(key.split(".")[0]), key.split(".")[1])
        if isinstance(target, dict):
            if delete:
                target.pop(name, None)
            else:
                target[name] = value
    return json.dumps(meta, allow_nan=True).encode()


def _data_bytes(good_data: bytes, spec) -> bytes:
    kind = spec[0]
    if kind == "good":
        return good_data
    if kind == "bytes":
        return spec[1]
    if kind == "truncate":
        return good_data[: int(spec[1] * len(good_data))]
    if kind == "flip":
        i = min(int(spec[1] * len(good_data)), len(good_data) - 1)
        return good_data[:i] + bytes([good_data[i] ^ spec[2]]) + good_data[i + 1 :]
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": spec[2], "fortran_order": False, "shape": tuple(spec[1])})
    return buf.getvalue() + spec[3]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=meta_files, data=data_files, verify=st.booleans())
def test_opening_a_random_or_corrupted_bank_works_or_raises_value_error(good, meta, data, verify):
    good_meta = json.loads((good / "bank.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bank"
        shutil.copytree(good, root)
        (root / "bank.json").write_bytes(_meta_bytes(good_meta, meta))
        (root / "samples.npy").write_bytes(_data_bytes((good / "samples.npy").read_bytes(), data))
        try:
            bank = Bank(root, verify=verify)
            rows = bank.rows(0, min(2, len(bank)))
            assert rows.shape == (min(2, len(bank)), bank.dim)
            bank.take([len(bank) - 1])
        except ValueError:  # BankError is a ValueError
            pass
