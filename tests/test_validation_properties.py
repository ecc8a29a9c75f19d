"""Property-based tests of the public validation layer.

Random shapes, dtypes, NaN/inf, huge and negative integers and wrong types go into ``sample``,
``permanent``, ``probability``, ``probabilities`` and ``latent.make``.  Every call must either
return a correct result (checked against brute force where cheap) or raise ValueError/TypeError:
never crash, hang, or raise anything else.  Sizes stay small so each example runs in
milliseconds; a watchdog turns a hang into a failure.
"""

from __future__ import annotations

import contextlib
import math
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qboson
from reference_math import exact_distribution, permanent_bruteforce

SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WATCHDOG_S = 20


class Hung(Exception):
    """Raised by the watchdog; not a ValueError/TypeError, so a hang fails the test."""


@contextlib.contextmanager
def watchdog(seconds: float = WATCHDOG_S):
    def fire(signum, frame):
        raise Hung(f"call did not return within {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def outcome(fn):
    """Call ``fn`` under the watchdog: (result, None) or (None, the ValueError/TypeError raised)."""
    with watchdog():
        try:
            return fn(), None
        except (ValueError, TypeError) as exc:
            assert str(exc), "errors must say what is wrong"
            return None, exc


# --- strategies -------------------------------------------------------------------------------

# Small valid-looking ints, negatives, and values that overflow int64/uint64 arithmetic.  (Large
# but representable counts are valid requests that merely take long; they are left out.)
ints = st.one_of(
    st.integers(-3, 6),
    st.integers(min_value=2**62, max_value=2**70),
    st.integers(max_value=-(2**62)),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64]),
)
floats = st.floats(allow_nan=True, allow_infinity=True)
junk = st.one_of(st.none(), st.booleans(), floats, st.text(max_size=3), st.just(object()), st.just([1, [2]]))
int_like = st.one_of(ints, junk)

DTYPES = [np.int64, np.uint64, np.float64, np.complex128, np.bool_, np.float32, object, "U2"]


@st.composite
def arrays(draw, shape=None):
    """Small arrays of any dtype, sometimes with NaN/inf or huge entries."""
    if shape is None:
        ndim = draw(st.integers(0, 3))
        shape = tuple(draw(st.integers(0, 4)) for _ in range(ndim))
    dtype = draw(st.sampled_from(DTYPES))
    values = draw(st.lists(st.one_of(st.integers(-3, 3), floats, st.integers(2**62, 2**64 - 1)),
                           min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    try:
        with np.errstate(all="ignore"):
            arr = np.array(values, dtype=object).reshape(shape).astype(dtype)
    except (ValueError, TypeError, OverflowError):
        arr = np.zeros(shape, dtype=np.float64)
    return arr


@st.composite
def matrices(draw):
    """Unitaries (valid), perturbed unitaries, arbitrary small arrays, and junk."""
    kind = draw(st.sampled_from(["haar", "haar", "haar", "haar_nan", "non_unitary", "array", "junk", "list"]))
    m = draw(st.integers(1, 4))
    if kind == "haar":
        return qboson.haar_unitary(m, seed=draw(st.integers(0, 5)))
    if kind == "non_unitary":
        return draw(non_unitary())
    if kind == "haar_nan":
        u = qboson.haar_unitary(m, seed=0).copy()
        u[draw(st.integers(0, m - 1)), 0] = draw(st.sampled_from([np.nan, np.inf, 1e300]))
        return u
    if kind == "array":
        return draw(arrays())
    if kind == "list":
        return draw(st.lists(st.lists(st.integers(-2, 2), min_size=1, max_size=3), max_size=3))
    return draw(junk)


modes_like = st.one_of(st.none(), st.lists(ints, max_size=4), arrays(), junk)


def mostly(valid, invalid):
    """Valid three times in four, so that one bad argument meets otherwise good ones."""
    return st.one_of(valid, valid, valid, invalid)


good_modes = st.sampled_from([[0], [1], [0, 1], [1, 0], [0, 2], [2, 0, 1]])
good_threads = st.one_of(st.none(), st.integers(1, 3))
bad_threads = st.one_of(int_like, st.sampled_from([0, 257, 1000]))
good_unitary = st.builds(lambda m, s: qboson.haar_unitary(m, seed=s), st.integers(2, 4), st.integers(0, 5))


@st.composite
def non_unitary(draw):
    """Finite square matrices that are not unitary (what a loose tolerance would let through)."""
    m = draw(st.integers(2, 4))
    scale = draw(st.sampled_from([0.5, 2.0, 1e3, 1e300]))
    rng = np.random.default_rng(draw(st.integers(0, 10)))
    return scale * (rng.normal(size=(m, m)) + 1j * rng.normal(size=(m, m)))


# --- properties -------------------------------------------------------------------------------
#
# Each example starts from a valid call and replaces up to two arguments with bad values, so that
# a bad argument meets otherwise good ones (where validation gaps show).


def corrupt(data, valid: dict, bad: dict) -> dict:
    kwargs = dict(valid)
    for key in sorted(data.draw(st.sets(st.sampled_from(sorted(bad)), max_size=2), label="corrupted")):
        kwargs[key] = data.draw(bad[key], label=key)
    return kwargs


SAMPLE_BAD = {
    "n": int_like, "m": int_like, "shots": int_like, "unitary": matrices(), "input_modes": modes_like,
    "seed": int_like, "distinguishable": junk, "threads": bad_threads, "method": junk,
    "start": st.one_of(int_like, st.integers(2**64 - 6, 2**64 + 2)), "atol": st.one_of(floats, junk),
}


@SETTINGS
@given(data=st.data())
def test_sample_returns_counts_or_raises_clearly(data):
    m = data.draw(st.integers(2, 5), label="m")
    use_unitary = data.draw(st.booleans(), label="use_unitary")
    valid = {
        "n": data.draw(st.integers(1, m), label="n"), "m": None if use_unitary else m,
        "shots": data.draw(st.integers(0, 5), label="shots"),
        "unitary": qboson.haar_unitary(m, seed=1) if use_unitary else None, "input_modes": None,
        "seed": data.draw(st.integers(0, 9), label="seed"), "distinguishable": data.draw(st.booleans()),
        "threads": data.draw(good_threads, label="threads"), "method": data.draw(st.sampled_from(["cc2020", "cc2017"])),
        "start": data.draw(st.integers(0, 3), label="start"), "atol": 1e-8,
    }
    kw = corrupt(data, valid, SAMPLE_BAD)
    out, err = outcome(lambda: qboson.sample(progress=False, **kw))
    if err is None:
        photons = len(kw["input_modes"]) if kw["input_modes"] is not None else kw["n"]
        modes = np.asarray(kw["unitary"]).shape[0] if kw["unitary"] is not None else kw["m"]
        assert out.shape == (kw["shots"], modes)
        assert np.all(out.sum(axis=1) == photons)
        assert kw["start"] + kw["shots"] <= 2**64  # 64-bit shot streams: no silent wrap to shot 0
        assert kw["threads"] is None or kw["threads"] <= 256


PERMANENT_BAD = {
    "a": st.one_of(matrices(), arrays()), "threads": bad_threads, "extended": junk,
    "max_seconds": st.one_of(floats, junk),
    "rows": st.one_of(modes_like, st.lists(st.sampled_from([0, 1, 2, 2**62, 2**63 - 1, 2**64 - 1, -(2**63)]),
                                           min_size=1, max_size=3)),
}


@SETTINGS
@given(data=st.data())
def test_permanent_is_right_or_raises_clearly(data):
    groups = data.draw(st.integers(1, 3), label="groups")
    mult = data.draw(st.lists(st.integers(1, 2), min_size=groups, max_size=groups), label="mult")
    n = sum(mult)
    rng = np.random.default_rng(data.draw(st.integers(0, 9), label="matrix seed"))
    with_rows = data.draw(st.booleans(), label="with_rows")
    a = rng.normal(size=(groups if with_rows else n, n)) + 1j * rng.normal(size=(groups if with_rows else n, n))
    valid = {"a": a, "rows": mult if with_rows else None, "threads": data.draw(good_threads),
             "extended": data.draw(st.booleans()), "max_seconds": 3600.0}
    kw = corrupt(data, valid, PERMANENT_BAD)
    value, err = outcome(lambda: qboson.permanent(**kw))
    if err is None:
        assert isinstance(value, complex)
        mat = np.asarray(kw["a"], dtype=complex)
        if kw["rows"] is not None:
            mat = np.repeat(mat, np.asarray(kw["rows"], dtype=np.int64), axis=0)
        expected = permanent_bruteforce(mat) if mat.shape[0] else 1.0
        assert abs(value - expected) <= 1e-10 * max(1.0, abs(expected))


PROBABILITY_BAD = {
    "unitary": matrices(), "input_modes": modes_like, "distinguishable": junk, "atol": st.one_of(floats, junk),
    "pattern": st.one_of(st.lists(ints, max_size=5), arrays(), junk,
                         st.lists(st.sampled_from([0, 1, 2**62, 2**63 - 1, 2**64 - 1]), min_size=2, max_size=5)),
}


@SETTINGS
@given(data=st.data())
def test_probability_is_right_or_raises_clearly(data):
    m = data.draw(st.integers(2, 4), label="m")
    inputs = sorted(data.draw(st.sets(st.integers(0, m - 1), min_size=1, max_size=m), label="inputs"))
    counts = np.bincount(data.draw(st.lists(st.integers(0, m - 1), min_size=len(inputs), max_size=len(inputs))),
                         minlength=m)
    valid = {"unitary": qboson.haar_unitary(m, seed=data.draw(st.integers(0, 5))), "input_modes": inputs,
             "pattern": counts, "distinguishable": data.draw(st.booleans()), "atol": 1e-8}
    kw = corrupt(data, valid, PROBABILITY_BAD)
    p, err = outcome(lambda: qboson.probability(kw["unitary"], kw["input_modes"], kw["pattern"],
                                                distinguishable=kw["distinguishable"], atol=kw["atol"]))
    if err is None:
        u = np.asarray(kw["unitary"])
        np.testing.assert_allclose(u.conj().T @ u, np.eye(u.shape[0]), atol=1e-6)  # only unitaries pass
        probs = exact_distribution(u, [int(i) for i in kw["input_modes"]], kw["distinguishable"])
        assert p == pytest.approx(probs[tuple(int(c) for c in kw["pattern"])], abs=1e-12)


PROBABILITIES_BAD = {
    "unitary": matrices(), "input_modes": modes_like, "distinguishable": junk,
    "max_patterns": int_like, "atol": st.one_of(floats, junk),
}


@SETTINGS
@given(data=st.data())
def test_probabilities_are_a_distribution_or_raise_clearly(data):
    m = data.draw(st.integers(2, 4), label="m")
    inputs = sorted(data.draw(st.sets(st.integers(0, m - 1), min_size=1, max_size=m), label="inputs"))
    valid = {"unitary": qboson.haar_unitary(m, seed=data.draw(st.integers(0, 5))), "input_modes": inputs,
             "distinguishable": data.draw(st.booleans()), "max_patterns": data.draw(st.sampled_from([None, 50])),
             "atol": 1e-8}
    kw = corrupt(data, valid, PROBABILITIES_BAD)
    res, err = outcome(lambda: qboson.probabilities(
        kw["unitary"], kw["input_modes"], distinguishable=kw["distinguishable"], max_patterns=kw["max_patterns"],
        atol=kw["atol"],
    ))
    if err is None:
        patterns, probs = res
        mm, n = np.asarray(kw["unitary"]).shape[0], len(kw["input_modes"])
        assert patterns.shape == (math.comb(mm + n - 1, n), mm) and probs.shape == (patterns.shape[0],)
        assert np.all(patterns.sum(axis=1) == n)
        assert probs.sum() == pytest.approx(1.0, abs=1e-9) and np.all(probs >= -1e-15)


LATENT_BAD = {
    "name": st.one_of(junk, st.text(max_size=5)), "dim": int_like, "seed": int_like, "n_photons": int_like,
    "threads": bad_threads, "method": junk, "p": st.one_of(floats, junk), "match": junk,
}
_LATENT_EXTRA = {"quantum": ("threads", "method"), "photonic": ("threads", "method"), "bernoulli": ("p",),
                 "gaussian_matched": ("match",), "counts_matched": ("match",), "gaussian": ()}


@SETTINGS
@given(data=st.data())
def test_latent_make_samples_or_raises_clearly(data):
    name = data.draw(st.sampled_from(sorted(qboson.latent.KINDS)), label="name")
    dim = data.draw(st.integers(1, 6), label="dim")
    valid = {"name": name, "dim": dim, "seed": data.draw(st.integers(0, 5)), "n_photons": None}
    extras = {"threads": 1, "method": "cc2020", "p": 0.5, "match": "quantum"}
    valid.update({k: extras[k] for k in _LATENT_EXTRA.get(name, ())})
    kw = corrupt(data, valid, {k: v for k, v in LATENT_BAD.items() if k in valid})

    def make_and_draw():
        z = qboson.latent.make(kw["name"], kw["dim"], **{k: v for k, v in kw.items() if k not in ("name", "dim")})
        return z, z.sample(3, seed=0)

    res, err = outcome(make_and_draw)
    if err is None:
        z, x = res
        assert z.dim == kw["dim"] and x.shape == (3, kw["dim"]) and np.all(np.isfinite(x))


def test_counts_matched_single_mode_does_not_divide_by_zero():
    # Found by the property test above: one mode holds every photon, so both variances are 0 and the
    # old comparison (round-off above 0) went on to divide by the multinomial variance.
    z = qboson.latent.make("counts_matched", 1, seed=0)
    x = z.sample(3, seed=0)
    assert x.shape == (3, 1) and np.all(np.abs(x) < 1e-12)  # always n photons in the one mode, centred
