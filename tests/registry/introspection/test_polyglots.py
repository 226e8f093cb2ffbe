"""A pickle is found wherever it hides: files of any kind are also read as pickle.load (and
joblib.load, torch.load) would read them from byte 0, and judged by what that would do."""

import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import random
import struct
import tempfile

import joblib
import numpy
import pytest
from safetensors.numpy import save as safetensors_save

from registry.introspection import dispatch
from registry.introspection.pickles import scan_as_loaded
from registry.introspection.report import FAILED, QUARANTINED, READY, REVIEW
from tests.registry.introspection.sandbox import (  # noqa: F401 (fixtures)
    BENIGN_PICKLE,
    MALICIOUS_PICKLE,
    RUNTIME_YAML,
    artifact_members,
    marker,
    nothing_is_unpickled,
    zip_bytes,
)
from tests.registry.introspection.test_artifact import savedmodel_members
from tests.registry.introspection.test_headers import (
    hdf5_v0,
    hdf5_v2,
    onnx_bytes,
    r_xdr,
    rdata,
)
from tests.registry.introspection.test_pickles import legacy_torch, torch_object
from tests.registry.introspection.test_pmml import REGRESSION_PMML

HDF5_USER_BLOCK = 512


@pytest.fixture(autouse=True)
def _only_reads(nothing_is_unpickled):  # noqa: F811 (fixture)
    pass


class Reduce:
    """Pickles as a call of `func(*args)`; pickling it runs nothing."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def system_pickle(marker) -> bytes:
    return pickle.dumps(Reduce(os.system, f"touch {marker}"), protocol=2)


def unvetted_pickle(*, stop: bool = True) -> bytes:
    # mylibrary.models.Scorer("f1"), then STOP (or bytes that are no opcode).
    return b"\x80\x02cmylibrary.models\nScorer\n(X\x02\x00\x00\x00f1tR" + (b"." if stop else b"\xff\xff")


def in_user_block(data: bytes, hdf5: bytes | None = None) -> bytes:
    """`data` as an HDF5 user block: padded to 512 bytes, the HDF5 file after it (HDF5 allows this)."""
    assert len(data) <= HDF5_USER_BLOCK
    return data + bytes(HDF5_USER_BLOCK - len(data)) + (hdf5 or hdf5_v0())


def rds_polyglot(data: bytes) -> bytes:
    """An uncompressed RDS header ("X\\n" is BINUNICODE, its 10-byte string swallows the rest)."""
    return b"X\n" + struct.pack(">III", 3, 0x040302, 0x030500) + b"\x00" + data


def joblib_dumped(value, **kwargs) -> bytes:
    with tempfile.TemporaryFile() as handle:
        joblib.dump(value, handle, **kwargs)
        handle.seek(0)
        return handle.read()


def as_loaded(data: bytes):
    report = scan_as_loaded(io.BytesIO(data))
    if report is not None:
        json.dumps(report.as_dict())
    return report


def introspect(kind: str, data: bytes):
    report = dispatch.introspect(kind, io.BytesIO(data), size=len(data))
    json.dumps(report.as_dict())
    return report


# --- scan_as_loaded: what pickle.load would do --------------------------------------------------

def test_two_harmless_opcodes_do_not_hide_a_pickle(marker):
    report = as_loaded(b"N0" + system_pickle(marker))
    assert report.status == QUARANTINED
    assert "posix.system" in report.message or "os.system" in report.message
    assert report.details["as_loaded"]["accepted_by"] == ["pickle.load"]


def test_what_runs_before_the_first_error_counts(marker):
    # pickle.load runs os.system at REDUCE, then fails on the garbage: too late.
    data = system_pickle(marker)[:-1] + b"\xff not a pickle any more"
    report = as_loaded(data)
    assert report.status == QUARANTINED
    assert report.details["as_loaded"]["accepted_by"] == []
    assert report.details["as_loaded"]["pickle.load"]["stop_reason"] == "invalid pickle opcode 0xff"


def test_a_harmless_pickle_is_ready_data():
    report = as_loaded(b"N0" + BENIGN_PICKLE)
    assert report.status == READY
    assert report.detected_kind == "pkl"
    assert report.details["as_loaded"]["accepted_by"] == ["pickle.load"]


def test_unvetted_imports_of_an_accepted_pickle_need_review():
    report = as_loaded(b"N0" + unvetted_pickle())
    assert report.status == REVIEW
    assert report.details["unvetted"] == [
        {"import": "mylibrary.models.Scorer", "module": "mylibrary.models", "name": "Scorer", "called": True}]


def test_an_unvetted_call_before_an_error_needs_review():
    report = as_loaded(unvetted_pickle(stop=False))
    assert report.status == REVIEW
    assert report.details["as_loaded"]["accepted_by"] == []
    assert [item["import"] for item in report.details["unvetted"]] == ["mylibrary.models.Scorer"]


@pytest.mark.parametrize("data", [
    b"cat\ndog\nbird\n",  # GLOBAL at.dog, then BUILD on an empty stack: imported, never called
    b"cmylibrary\nthing\n\xff",
    b"ca-b\nc\n)R.",  # module "a-b" cannot be imported: loading stops before the call
    b"cmylibrary\nnot a name\n)R.",  # the name cannot be looked up: stops before the call
    b"(cmylibrary.models\nScorer\n\xff",
])
def test_imports_that_are_never_called_before_loading_stops_count_for_nothing(data):
    assert as_loaded(data) is None


def test_an_extension_code_counts_in_a_whole_pickle_only():
    whole = b"N0\x80\x02\x82\x05(X\x02\x00\x00\x00lstR."  # EXT1 5, called: who knows what code 5 is
    assert as_loaded(whole).status == QUARANTINED
    assert as_loaded(b"\x82\x05(X\x02\x00\x00\x00lstR\xff") is None  # plain pickle.load stops at EXT


def test_a_dangerous_name_that_cannot_be_imported_still_counts():
    report = as_loaded(b"cos \nsystem\n(S'ls'\ntR.")  # "os " is os to the policy, as in the pickle scanner
    assert report.status == QUARANTINED


def test_every_pickle_in_a_row_is_read(marker):
    report = as_loaded(BENIGN_PICKLE + system_pickle(marker))
    assert report.status == QUARANTINED
    assert report.details["as_loaded"]["pickle.load"]["pickles"] == 2


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_data_is_read_as_joblib_load_reads_it(marker, compress):
    report = as_loaded(compress(system_pickle(marker)))
    assert report.status == QUARANTINED
    assert "joblib.load" in report.details["as_loaded"]["accepted_by"]


def test_joblib_array_data_is_read_as_joblib_load_reads_it(marker):
    # pickle.load stops in the array bytes; joblib.load skips them and reaches os.system.
    data = b"N0" + joblib_dumped([numpy.arange(4, dtype=numpy.uint8), Reduce(os.system, f"touch {marker}")])
    report = as_loaded(data)
    assert report.details["as_loaded"]["pickle.load"]["accepted"] is False
    assert report.status == QUARANTINED
    assert report.details["scanned_as_joblib"]["status"] == QUARANTINED
    assert report.details["as_loaded"]["accepted_by"] == ["joblib.load"]


def test_a_legacy_torch_file_is_read_as_torch_load_reads_it(marker):
    evil = (b"X\x04\x00\x00\x00bias" + b"csubprocess\ncheck_output\n" + b"((" + pickle.dumps(f"touch {marker}")[2:-2]
            + b"ltR")
    data = b"N0" + legacy_torch(torch_object(extra=evil), struct.pack("<q", 4) + bytes(16))
    report = as_loaded(data)
    assert report.status == QUARANTINED
    assert report.details["scanned_as_pt"]["status"] == QUARANTINED


def test_a_legacy_torch_file_uploaded_as_other_is_asked_for_as_pt():
    report = introspect("other", b"N0" + legacy_torch(torch_object(), struct.pack("<q", 4) + bytes(16)))
    assert report.status == FAILED
    assert "kind 'pt'" in report.message


@pytest.mark.parametrize("data", [
    onnx_bytes(),
    safetensors_save({"w": numpy.zeros(3, dtype=numpy.float32)}),
    safetensors_save({"embedding.weight": numpy.arange(40, dtype=numpy.float16).reshape(10, 4)}),
    hdf5_v0(), hdf5_v0(user_block=512), hdf5_v2(),
    rdata(), rdata(bz2.compress), rdata(lzma.compress), rdata(None), gzip.compress(r_xdr()), r_xdr(), r_xdr(2),
    REGRESSION_PMML,
    zip_bytes(artifact_members()), zip_bytes(savedmodel_members()), zip_bytes({"notes.txt": b"hello"}),
    RUNTIME_YAML, b"def predict(data):\n    return data\n", json.dumps({"a": [1, 2]}).encode(),
    b"sepal_length,sepal_width\n5.1,3.5\n", b"", bytes(range(256)) * 4, gzip.compress(b"plain text"),
])
def test_genuine_files_are_nothing_to_pickle_load(data):
    assert as_loaded(data) is None


def test_random_bytes_after_a_valid_opcode_raise_no_alarm():
    # Only what pickle would really do counts: random data starting with an opcode stops at
    # once, or is (rarely) a tiny valid pickle of constants, never dangerous or unvetted.
    opcodes = sorted(set(b"().012BCFGIJKLMNPQRSTUVX]abcdeghijlopqrstu}") | set(range(0x80, 0x99)))
    generator = random.Random(12)
    for _ in range(2000):
        body = generator.randbytes(generator.choice([8, 64, 600]))
        report = as_loaded(bytes([generator.choice(opcodes)]) + body)
        assert report is None or report.status == READY, report.message


def test_random_blobs_uploaded_as_other_stay_ready():
    opcodes = sorted(set(b"().012BCFGIJKLMNPQRSTUVX]abcdeghijlopqrstu}") | set(range(0x80, 0x99)))
    generator = random.Random(7)
    for _ in range(500):
        data = bytes([generator.choice(opcodes)]) + generator.randbytes(generator.choice([2, 40, 700]))
        report = introspect("other", data)
        assert report.status == READY, (data[:20], report.message)


def test_a_seekable_file_is_read_from_its_start_and_left_alone_otherwise(marker):
    handle = io.BytesIO(b"N0" + system_pickle(marker))
    handle.seek(5)
    assert scan_as_loaded(handle).status == QUARANTINED
    assert scan_as_loaded(io.BytesIO(b"N0" + system_pickle(marker)), size=None).status == QUARANTINED


# --- introspect: every kind that is not scanned as a pickle already ----------------------------

def test_a_prefixed_pickle_uploaded_as_other_is_quarantined(marker):
    report = introspect("other", b"N0" + system_pickle(marker))
    assert report.status == QUARANTINED  # was "ready: opaque data of no recognised kind"
    assert report.detected_kind == "pkl"


def test_a_harmless_pickle_uploaded_as_other_fails_and_asks_for_its_kind():
    report = introspect("other", b"N0" + pickle.dumps({"labels": {"cat", "dog"}}, protocol=2))  # imports set
    assert report.status == FAILED  # was ready
    assert "kind 'pkl'" in report.message
    assert report.details["read_as_pickle"]["status"] == READY


@pytest.mark.parametrize("data", [b"N0" + BENIGN_PICKLE, b"N.B. read this first", b"}.\x9f\x03binary blob"])
def test_a_pickle_of_constants_only_is_plain_data_even_as_other(data):
    report = introspect("other", data)
    assert report.status == READY
    assert "this file is a pickle: no globals: plain data" in report.message
    assert report.details["read_as_pickle"]["details"]["as_loaded"]["constants_only"] is True


def test_a_pickle_other_recognises_still_fails_and_keeps_the_pickle_verdict():
    report = introspect("other", unvetted_pickle())
    assert report.status == FAILED
    assert report.message.count("kind 'pkl'") == 1
    assert report.details["read_as_pickle"]["status"] == REVIEW
    assert report.details["read_as_pickle"]["details"]["unvetted"][0]["import"] == "mylibrary.models.Scorer"


def test_an_unvetted_call_in_other_data_needs_review():
    report = introspect("other", b"N0" + unvetted_pickle(stop=False))
    assert report.status == REVIEW
    assert report.details["unvetted"][0]["import"] == "mylibrary.models.Scorer"


def test_a_joblib_file_behind_two_opcodes_is_a_joblib_file():
    report = introspect("other", b"N0" + joblib_dumped(numpy.arange(10.0)))
    assert report.status == FAILED
    assert "kind 'joblib'" in report.message


def test_a_pickle_in_an_hdf5_user_block_is_quarantined(marker):
    data = in_user_block(system_pickle(marker))
    report = introspect("h5", data)
    assert report.status == QUARANTINED  # was "ready: HDF5 file, superblock version 0"
    assert report.detected_kind == "h5"
    assert report.details["user_block_size"] == HDF5_USER_BLOCK
    assert report.details["read_as_pickle"]["status"] == QUARANTINED


def test_a_compressed_pickle_in_an_hdf5_user_block_is_quarantined(marker):
    assert introspect("h5", in_user_block(gzip.compress(system_pickle(marker)))).status == QUARANTINED


def test_a_harmless_pickle_in_a_user_block_leaves_the_hdf5_file_ready_and_says_so():
    report = introspect("h5", in_user_block(BENIGN_PICKLE))
    assert report.status == READY
    assert "HDF5 file" in report.message and "pickle" in report.message
    assert report.details["read_as_pickle"]["details"]["as_loaded"]["accepted_by"] == ["pickle.load"]


def test_review_of_a_hidden_pickle_makes_the_file_review():
    report = introspect("h5", in_user_block(unvetted_pickle()))
    assert report.status == REVIEW
    assert report.details["unvetted"] == [
        {"import": "mylibrary.models.Scorer", "module": "mylibrary.models", "name": "Scorer", "called": True}]


def test_a_pickle_behind_an_rds_header_is_quarantined(marker):
    data = rds_polyglot(system_pickle(marker))
    report = introspect("rda", data)
    assert report.status == QUARANTINED
    assert report.detected_kind == "rda"


@pytest.mark.parametrize("declared", ["pkl", "joblib", "pt", "onnx", "safetensors", "pmml", "rda", "artifact"])
def test_a_polyglot_cannot_skip_the_reading_through_a_kind_contradiction(marker, declared):
    report = introspect(declared, in_user_block(system_pickle(marker)))
    assert report.status == QUARANTINED
    assert "declared as" in report.message  # the contradiction is still named


@pytest.mark.parametrize("kind, data", [
    ("onnx", onnx_bytes()),
    ("pmml", REGRESSION_PMML),
    ("safetensors", safetensors_save({"w": numpy.zeros(3, dtype=numpy.float32)})),
    ("h5", hdf5_v0()), ("h5", hdf5_v0(user_block=1024)), ("h5", hdf5_v2()),
    ("rda", rdata()), ("rda", rdata(bz2.compress)), ("rda", rdata(lzma.compress)), ("rda", rdata(None)),
    ("rda", gzip.compress(r_xdr())), ("rda", r_xdr()),
    ("savedmodel", zip_bytes(savedmodel_members())),
    ("artifact", zip_bytes(artifact_members())),
    ("other", b"vocabulary\nwords\n"), ("other", b"cat\ndog\nbird\n"), ("other", zip_bytes({"notes.txt": b"hi"})),
    ("other", json.dumps({"labels": ["a", "b"]}).encode()), ("other", gzip.compress(b"some text")),
])
def test_genuine_files_of_every_kind_stay_ready(kind, data):
    report = introspect(kind, data)
    assert report.status == READY, report.message
    assert "read_as_pickle" not in report.details
