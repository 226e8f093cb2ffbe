"""The pickle scanner on real benign files and on malicious or malformed ones made here.

Malicious files are generated (pickle.dumps of an object whose __reduce__ names
os.system, or opcodes written by hand) and only ever scanned: every test checks that the
payload never ran (it would create a marker file), and unpickling functions are replaced
by ones that fail the test for the whole module.
"""

import io
import json
import os
import pickle
import random
import struct
import subprocess
import tempfile
import zipfile
import zlib

import joblib
import numpy
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from registry.introspection.pickles import (
    ALLOWED,
    DANGEROUS,
    TORCH_LEGACY_MAGIC,
    UNVETTED,
    ScanLimits,
    classify_global,
    scan_joblib,
    scan_pickle_stream,
    scan_serialized,
    scan_torch,
)
from registry.introspection.report import FAILED, QUARANTINED, READY, REVIEW
from tests.registry.introspection.sandbox import marker, nothing_is_unpickled, zip_bytes  # noqa: F401 (fixtures)

# --- no test may ever run a payload -----------------------------------------------------------


@pytest.fixture(autouse=True)
def _only_reads(nothing_is_unpickled):  # noqa: F811 (fixture)
    pass


# --- helpers ------------------------------------------------------------------------------------

def scan(data: bytes, scanner=scan_pickle_stream, **kwargs):
    with tempfile.TemporaryFile() as handle:
        handle.write(data)
        handle.seek(0)
        report = scanner(handle, **kwargs)
    json.dumps(report.as_dict())  # always storable as JSON
    return report


def dumped(dump, **kwargs) -> bytes:
    """What joblib.dump (or any writer taking a file) writes, as bytes."""
    with tempfile.TemporaryFile() as handle:
        dump(handle, **kwargs)
        handle.seek(0)
        return handle.read()


def verdicts(report) -> dict[str, str]:
    return {f"{entry['module']}.{entry['name']}": entry["verdict"] for entry in report.details["globals"]}


class Reduce:
    """Pickles as a call of `func(*args)`: what a malicious model file does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


# A tiny pickle assembler for streams that pickle.dumps never writes.
MARK, STOP, POP, TUPLE, TUPLE1, TUPLE2 = b"(", b".", b"0", b"t", b"\x85", b"\x86"
REDUCE, BUILD, NEWOBJ, STACK_GLOBAL, MEMOIZE = b"R", b"b", b"\x81", b"\x93", b"\x94"
EMPTY_TUPLE, EMPTY_DICT, SETITEMS = b")", b"}", b"u"
NONE, NEWTRUE, NEWFALSE, BINPERSID = b"N", b"\x88", b"\x89", b"Q"


def proto(number: int) -> bytes:
    return b"\x80" + bytes([number])


def text(value: str) -> bytes:  # SHORT_BINUNICODE
    data = value.encode()
    return b"\x8c" + bytes([len(data)]) + data


def unicode(value: str) -> bytes:  # BINUNICODE (protocol 1+)
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def binbytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def global_(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def integer(value: int) -> bytes:
    return b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)


def binget(index: int) -> bytes:
    return b"h" + bytes([index])


def call(func: bytes, *args: bytes) -> bytes:
    return func + MARK + b"".join(args) + TUPLE + REDUCE


def frame(body: bytes) -> bytes:
    return b"\x95" + struct.pack("<Q", len(body)) + body


def shell(marker) -> bytes:
    return text(f"touch {marker}")


# --- benign files -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted_model():
    features = numpy.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.5, 0.2], [0.2, 0.9]])
    labels = numpy.array([0, 1, 1, 0, 1, 0])
    return LogisticRegression().fit(features, labels)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_dict_of_floats_is_ready_with_no_globals(protocol):
    report = scan(pickle.dumps({"alpha": 0.5, "beta": [1.5, 2.5], "gamma": (3.0,)}, protocol=protocol))

    assert report.status == READY
    assert report.detected_kind == "pkl"
    assert report.details["globals"] == []
    assert report.details["pickles"] == 1
    assert report.details["opcodes"] > 0


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_array_pickle_is_ready(protocol):
    report = scan(pickle.dumps(numpy.arange(12.0).reshape(3, 4), protocol=protocol))

    assert report.status == READY, report.message
    assert all(verdict == ALLOWED for verdict in verdicts(report).values())


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickled_logistic_regression_is_ready(fitted_model, protocol):
    report = scan(pickle.dumps(fitted_model, protocol=protocol))

    assert report.status == READY, report.message
    assert report.message.endswith("all allowed")
    assert "sklearn.linear_model._logistic.LogisticRegression" in verdicts(report)
    assert DANGEROUS not in verdicts(report).values()
    assert report.details["protocol"] == protocol
    for entry in report.details["globals"]:
        assert set(entry) == {"module", "name", "verdict", "count", "called"}


@pytest.mark.parametrize("compress", [0, 3, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
def test_joblib_dump_of_logistic_regression_is_ready(fitted_model, compress):
    data = dumped(lambda handle: joblib.dump(fitted_model, handle, compress=compress))

    report = scan(data, scan_joblib)

    assert report.status == READY, report.message
    assert DANGEROUS not in verdicts(report).values()
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in verdicts(report)
    assert report.details["joblib_arrays"] == 4  # classes_, n_iter_, coef_, intercept_
    assert report.detected_kind == ("pkl" if compress == 0 else "joblib")
    if compress:
        assert report.details["compression"] in ("zlib", "gzip", "bz2", "xz", "lzma")


def test_joblib_file_scanned_as_a_plain_pickle_kind_is_ready(fitted_model):
    # joblib.dump(model, "model.pkl") is common: the pkl scanner knows joblib's layout too.
    data = dumped(lambda handle: joblib.dump(fitted_model, handle))

    assert scan(data, scan_pickle_stream).status == READY


def test_joblib_arrays_of_every_layout_are_skipped_exactly():
    value = {
        "objects": numpy.array(["a", None, 3], dtype=object),
        "fortran": numpy.asfortranarray(numpy.arange(12.0).reshape(3, 4)),
        "strings": numpy.array(["ab", "c"]),
        "records": numpy.zeros(3, dtype=[("a", "f4"), ("b", "i8")]),
        "dates": numpy.array(["2020-01-01"], dtype="M8[ns]"),
        "empty": numpy.zeros((0, 3)),
        "scalar": numpy.float64(3.0),
    }
    for protocol in (2, 4, 5):
        data = dumped(lambda handle: joblib.dump(value, handle, protocol=protocol))

        report = scan(data, scan_joblib)

        assert report.status == READY, (protocol, report.message)
        assert report.details["joblib_arrays"] == 6


def test_sklearn_models_with_random_state_and_numpy_functions_are_ready():
    rng = numpy.random.RandomState(0)
    features, labels = rng.rand(40, 3), rng.randint(0, 2, 40)
    forest = RandomForestClassifier(n_estimators=3, random_state=rng).fit(features, labels)
    pipeline = make_pipeline(FunctionTransformer(numpy.log1p), StandardScaler(), LogisticRegression())
    pipeline.fit(features, labels)

    for model in (forest, pipeline):
        assert scan(pickle.dumps(model)).status == READY
        assert scan(dumped(lambda handle: joblib.dump(model, handle, compress=3)), scan_joblib).status == READY


def test_unvetted_third_party_globals_need_review():
    data = proto(2) + call(global_("mylibrary.models", "Scorer"), text("f1")) + global_("mylibrary.models", "Kind") + STOP

    report = scan(data)

    assert report.status == REVIEW
    assert "mylibrary.models.Scorer" in report.message
    assert verdicts(report) == {"mylibrary.models.Scorer": UNVETTED, "mylibrary.models.Kind": UNVETTED}
    assert report.details["unvetted"] == [
        {"import": "mylibrary.models.Kind", "module": "mylibrary.models", "name": "Kind", "called": False},
        {"import": "mylibrary.models.Scorer", "module": "mylibrary.models", "name": "Scorer", "called": True},
    ]


@pytest.mark.parametrize("module, name", [
    ("_osx_support", "_read_output"), ("_osx_support", "_find_build_tool"), ("uuid", "_get_command_stdout"),
    ("logging", "FileHandler"), ("os.path", "join"), ("builtins", "print"), ("functools", "partial"),
    ("__builtin__", "print"), ("Logging", "FileHandler"), ("_posixsubprocess", "fork_exec"),
])
def test_the_standard_library_is_closed(module, name):
    data = proto(2) + call(global_(module, name), text("/tmp/x")) + STOP

    report = scan(data)

    assert report.status == QUARANTINED, report.message
    assert verdicts(report) == {f"{module}.{name}": DANGEROUS}


def test_several_pickles_in_one_stream_are_all_scanned():
    report = scan(pickle.dumps({"a": 1}) + pickle.dumps([1.0, 2.0]) + pickle.dumps(numpy.zeros(2)))

    assert report.status == READY
    assert report.details["pickles"] == 3


# --- malicious files: quarantined ---------------------------------------------------------------

@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_reduce_to_os_system_is_quarantined(marker, protocol):
    data = pickle.dumps(Reduce(os.system, f"touch {marker}"), protocol=protocol)

    report = scan(data)

    assert report.status == QUARANTINED
    assert f"{os.system.__module__}.system" in report.message  # posix.system on Linux
    assert verdicts(report) == {f"{os.system.__module__}.system": DANGEROUS}


@pytest.mark.parametrize("func, args", [
    (eval, ("__import__('os').system('touch {marker}')",)),
    (exec, ("import os; os.system('touch {marker}')",)),
    (subprocess.Popen, (["touch", "{marker}"],)),
    (subprocess.check_output, (["touch", "{marker}"],)),
    (subprocess.run, (["touch", "{marker}"],)),
    (os.popen, ("touch {marker}",)),
    (os.execv, ("/usr/bin/touch", ["touch", "{marker}"])),
    (pickle.loads, (b"",)),
    (__import__, ("os",)),
    (getattr, (os, "system")),
    (open, ("{marker}", "w")),
], ids=lambda value: getattr(value, "__name__", "args"))
def test_dangerous_callables_written_by_pickle_are_quarantined(marker, func, args):
    def with_marker(value):
        if isinstance(value, list):
            return [with_marker(item) for item in value]
        return value.format(marker=marker) if isinstance(value, str) else value

    args = tuple(with_marker(arg) for arg in args)
    try:
        data = pickle.dumps(Reduce(func, *args), protocol=4)
    except TypeError:  # a module object (os) cannot be pickled: use its name instead
        data = proto(4) + call(global_(func.__module__, func.__name__), text("os"), text("system")) + STOP

    report = scan(data)

    assert report.status == QUARANTINED, report.message
    assert func.__name__ in report.message


@pytest.mark.parametrize("module, name", [
    ("os", "system"), ("posix", "system"), ("nt", "system"), ("builtins", "eval"), ("builtins", "exec"),
    ("__builtin__", "eval"), ("__builtin__", "execfile"), ("builtins", "compile"), ("builtins", "getattr"),
    ("builtins", "__import__"), ("builtins", "open"), ("subprocess", "Popen"), ("subprocess", "check_output"),
    ("commands", "getoutput"), ("socket", "create_connection"), ("shutil", "rmtree"), ("sys", "modules"),
    ("importlib", "import_module"), ("runpy", "run_path"), ("pty", "spawn"), ("webbrowser", "open"),
    ("pickle", "loads"), ("_pickle", "load"), ("cPickle", "loads"), ("marshal", "loads"),
    ("types", "FunctionType"), ("types", "CodeType"), ("operator", "attrgetter"), ("_operator", "methodcaller"),
    ("code", "InteractiveInterpreter"), ("ctypes", "CDLL"), ("pydoc", "locate"), ("_posixsubprocess", "fork_exec"),
    ("numpy", "load"), ("numpy", "save"), ("numpy.testing", "assert_equal"), ("torch", "load"),
    ("torch.storage", "_load_from_bytes"), ("joblib", "load"), ("copyreg", "add_extension"),
    ("asyncio", "create_subprocess_shell"), ("timeit", "timeit"), ("pathlib", "Path"),
    ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
    # reaching something dangerous through an attribute path or a special attribute
    ("sklearn.utils.fixes", "os"), ("sklearn.base", "os.system"), ("numpy", "ndarray.tofile"),
    ("builtins", "dict.fromkeys"), ("numpy", "testing.assert_equal"), ("collections", "__builtins__"),
    ("OS", "SYSTEM"),
])
def test_deny_list(marker, module, name):
    assert classify_global(module, name)[0] == DANGEROUS

    stack_global = proto(4) + text(module) + text(name) + STACK_GLOBAL + shell(marker) + TUPLE1 + REDUCE + STOP
    report = scan(stack_global)

    assert report.status == QUARANTINED
    assert f"{module}.{name}" in report.message


@pytest.mark.parametrize("module, name, verdict", [
    ("numpy.core.multiarray", "_reconstruct", ALLOWED), ("numpy._core.multiarray", "_reconstruct", ALLOWED),
    ("numpy", "dtype", ALLOWED), ("numpy", "ndarray", ALLOWED), ("collections", "OrderedDict", ALLOWED),
    ("builtins", "set", ALLOWED), ("__builtin__", "set", ALLOWED), ("copy_reg", "_reconstructor", ALLOWED),
    ("copyreg", "_reconstructor", ALLOWED), ("_codecs", "encode", ALLOWED), ("builtins", "frozenset", ALLOWED),
    ("builtins", "slice", ALLOWED), ("builtins", "complex", ALLOWED), ("builtins", "bytearray", ALLOWED),
    ("sklearn.linear_model._logistic", "LogisticRegression", ALLOWED), ("sklearn.tree._tree", "Tree", ALLOWED),
    ("scipy.sparse._csr", "csr_matrix", ALLOWED), ("torch._utils", "_rebuild_tensor_v2", ALLOWED),
    ("torch", "FloatStorage", ALLOWED), ("torch.nn.modules.linear", "Linear", ALLOWED),
    ("joblib.numpy_pickle", "NumpyArrayWrapper", ALLOWED), ("numpy.dtypes", "Float64DType", ALLOWED),
    ("numpy", "log1p", ALLOWED), ("numpy.random._pickle", "__randomstate_ctor", ALLOWED),
    ("os.path", "join", DANGEROUS), ("mylibrary.models", "Scorer", UNVETTED),
    ("sklearn.datasets", "load_iris", DANGEROUS), ("scipy.sparse", "save_npz", DANGEROUS), ("builtins", "print", DANGEROUS),
])
def test_allow_list(module, name, verdict):
    assert classify_global(module, name)[0] == verdict


def test_stack_global_from_memo_strings_is_resolved(marker):
    # The module and name are stored in the memo early, popped, and fetched back later.
    data = (proto(4) + text("os") + MEMOIZE + POP + text("noise") + MEMOIZE + POP + text("system") + MEMOIZE + POP
            + binget(0) + binget(2) + STACK_GLOBAL + shell(marker) + TUPLE1 + REDUCE + STOP)

    report = scan(data)

    assert report.status == QUARANTINED
    assert verdicts(report) == {"os.system": DANGEROUS}


def test_stack_global_from_duplicated_strings_is_resolved(marker):
    data = proto(4) + text("posix") + b"2" + POP + text("system") + STACK_GLOBAL + shell(marker) + TUPLE1 + REDUCE
    report = scan(data + STOP)

    assert report.status == QUARANTINED
    assert verdicts(report) == {"posix.system": DANGEROUS}


def test_stack_global_with_a_computed_module_name_is_quarantined(marker):
    # builtins.str(b"os", "ascii") is allowed and returns "os" at load time: not a constant.
    module = call(global_("builtins", "str"), binbytes(b"os"), text("ascii"))
    data = proto(4) + module + text("system") + STACK_GLOBAL + shell(marker) + TUPLE1 + REDUCE + STOP

    report = scan(data)

    assert report.status == QUARANTINED
    assert "STACK_GLOBAL ?.system" in report.message
    assert report.details["findings"][0]["kind"] == "unresolved_global"


def test_getattr_indirection_is_quarantined(marker):
    # getattr(__import__("os"), "system")("touch ...")
    os_module = call(global_("builtins", "__import__"), text("os"))
    system = call(global_("builtins", "getattr"), os_module, text("system"))
    data = proto(4) + system + MARK + shell(marker) + TUPLE + REDUCE + STOP

    report = scan(data)

    assert report.status == QUARANTINED
    assert verdicts(report) == {"builtins.getattr": DANGEROUS, "builtins.__import__": DANGEROUS}
    # ...and the call of what getattr returned is reported as an obfuscated call too.
    assert any(finding["kind"] == "indirect_call" for finding in report.details["findings"])


@pytest.mark.parametrize("importer", [
    global_("importlib", "import_module"),
    global_("operator", "attrgetter"),
    global_("pydoc", "locate"),
])
def test_dynamic_import_helpers_are_quarantined(marker, importer):
    data = proto(2) + call(importer, text("os.system")) + MARK + shell(marker) + TUPLE + REDUCE + STOP

    assert scan(data).status == QUARANTINED


def test_numpy_ufunc_reconstruct_is_followed_as_an_import(marker):
    # An allowed numpy helper that imports module.name given as strings.
    system = call(global_("numpy.core", "_ufunc_reconstruct"), text("os"), text("system"))
    data = proto(4) + system + MARK + shell(marker) + TUPLE + REDUCE + STOP

    report = scan(data)

    assert report.status == QUARANTINED
    assert verdicts(report)["os.system"] == DANGEROUS
    benign = proto(4) + call(global_("numpy.core", "_ufunc_reconstruct"), text("numpy"), text("log1p")) + STOP
    assert scan(benign).status == READY


def test_nested_pickle_is_scanned_recursively(marker):
    inner = pickle.dumps(Reduce(os.system, f"touch {marker}"), protocol=4)
    data = proto(4) + call(global_("pickle", "loads"), binbytes(inner)) + STOP

    report = scan(data)

    assert report.status == QUARANTINED
    assert verdicts(report) == {"pickle.loads": DANGEROUS, "posix.system": DANGEROUS}
    assert report.details["embedded_pickles"] == 1
    assert any("embedded pickle" in finding["where"] for finding in report.details["findings"])


def test_nested_pickle_hidden_in_text_for_codecs_encode_is_scanned(marker):
    inner = pickle.dumps(Reduce(os.system, f"touch {marker}"), protocol=0)
    payload = call(global_("_codecs", "encode"), unicode(inner.decode("latin-1")), text("latin1"))
    data = proto(2) + call(global_("cPickle", "loads"), payload) + STOP

    report = scan(data)

    assert report.status == QUARANTINED
    assert verdicts(report)["posix.system"] == DANGEROUS


def test_nesting_depth_is_limited(marker):
    data = pickle.dumps({"a": 1})
    for _ in range(8):
        data = proto(4) + call(global_("pickle", "loads"), binbytes(data)) + STOP

    report = scan(data)

    assert report.status == QUARANTINED  # pickle.loads itself, and the depth limit
    assert "levels deep" in report.message


def test_extension_codes_are_quarantined():
    data = proto(2) + b"\x82\x01" + MARK + TUPLE + REDUCE + STOP  # EXT1 1, called

    report = scan(data)

    assert report.status == QUARANTINED
    assert "extension code 1" in report.message


def test_calling_the_result_of_a_call_is_quarantined():
    factory = call(global_("mylibrary.tools", "make_function"), text("anything"))
    data = proto(2) + factory + MARK + text("argument") + TUPLE + REDUCE + STOP

    report = scan(data)

    assert report.status == QUARANTINED
    assert report.details["findings"][0]["kind"] == "indirect_call"


def test_allowed_function_forwarding_a_call_result_is_quarantined():
    # copyreg._reconstructor(cls, base, state) calls base.__new__: base must be a global.
    base = call(global_("mylibrary.tools", "make_class"), text("anything"))
    data = proto(2) + call(global_("copyreg", "_reconstructor"), global_("collections", "OrderedDict"), base,
                           NONE) + STOP

    assert scan(data).status == QUARANTINED


def test_build_on_an_imported_global_is_quarantined():
    # Setting attributes on a class or module (monkey-patching) through BUILD's slot state.
    data = (proto(2) + global_("sklearn.base", "BaseEstimator") + NONE + EMPTY_DICT + text("predict")
            + global_("mylibrary", "hook") + b"s" + TUPLE2 + BUILD + STOP)

    report = scan(data)

    assert report.status == QUARANTINED
    assert report.details["findings"][0]["kind"] == "mutates_global"


def test_malicious_second_pickle_in_a_stream_is_quarantined(marker):
    data = pickle.dumps({"weights": [1.0]}) + pickle.dumps(Reduce(os.system, f"touch {marker}"))

    report = scan(data)

    assert report.status == QUARANTINED
    assert report.details["pickles"] == 2


def test_dangerous_content_before_a_parse_error_is_quarantined_not_failed(marker):
    data = pickle.dumps(Reduce(os.system, f"touch {marker}"), protocol=2)[:-1] + b"\xff\xfe"

    report = scan(data)

    assert report.status == QUARANTINED
    assert "unreadable" in report.message


# --- joblib: arrays, compression, and the tricks around them ------------------------------------

def dtype(descr: str, *, flags: int = 0, element_size: int = -1) -> bytes:
    """A numpy.dtype as numpy pickles it: reduce arguments, then a version 3 state."""
    return (call(global_("numpy", "dtype"), text(descr), NEWFALSE, NEWTRUE) + MARK + integer(3) + text("<")
            + NONE + NONE + NONE + integer(element_size) + integer(-1) + integer(flags) + TUPLE + BUILD)


def array_wrapper(shape: tuple, dtype_opcodes: bytes, *, alignment: bool = True) -> bytes:
    """A joblib NumpyArrayWrapper; joblib reads the array bytes right after its BUILD."""
    state = (text("subclass") + global_("numpy", "ndarray") + text("shape") + MARK
             + b"".join(integer(dim) for dim in shape) + TUPLE + text("order") + text("C") + text("dtype")
             + dtype_opcodes + text("allow_mmap") + NEWFALSE)
    if alignment:
        state += text("numpy_array_alignment_bytes") + integer(16)
    return (global_("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT + MARK + state
            + SETITEMS + BUILD)


def test_handmade_joblib_array_is_skipped_exactly():
    data = proto(4) + array_wrapper((2, 3), dtype("f8")) + b"\x03\xff\xff\xff" + bytes(48) + STOP

    report = scan(data, scan_joblib)

    assert report.status == READY, report.message
    assert report.details["joblib_array_bytes"] == 48


def test_truncated_joblib_array_fails():
    data = proto(4) + array_wrapper((2, 3), dtype("f8")) + b"\x00" + bytes(40)

    report = scan(data, scan_joblib)

    assert report.status == FAILED
    assert "truncated" in report.message


def test_joblib_array_whose_dtype_flags_say_objects_is_read_as_a_pickle(marker):
    # numpy trusts the pickled flags for dtype.hasobject, and joblib then reads a nested
    # pickle instead of raw bytes: a scanner going by "f8" alone would skip the payload.
    payload = pickle.dumps(Reduce(os.system, f"touch {marker}"), protocol=2)
    data = proto(4) + array_wrapper((1,), dtype("f8", flags=1)) + payload + STOP

    report = scan(data, scan_joblib)

    assert report.status == QUARANTINED
    assert "posix.system" in report.message


def test_joblib_object_array_with_a_payload_is_quarantined(marker):
    value = {"features": numpy.array([Reduce(os.system, f"touch {marker}"), 1], dtype=object)}

    for compress in (0, 3):
        report = scan(dumped(lambda handle: joblib.dump(value, handle, compress=compress)), scan_joblib)

        assert report.status == QUARANTINED
        assert any("object array" in finding["where"] for finding in report.details["findings"])


def test_compressed_joblib_payload_is_quarantined(marker):
    for compress in (("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)):
        data = dumped(lambda handle: joblib.dump(Reduce(os.system, f"touch {marker}"), handle, compress=compress))

        report = scan(data, scan_joblib)

        assert report.status == QUARANTINED, compress
        assert report.detected_kind == "joblib"


def test_joblib_array_bytes_that_plain_pickle_load_would_run_are_quarantined(marker):
    # Without alignment (joblib <= 1.1), the array bytes follow BUILD directly. joblib.load
    # reads them as data, but pickle.load reads them as opcodes: here, a call of os.system.
    hidden = global_("os", "system") + shell(marker) + TUPLE1 + REDUCE + STOP
    data = proto(4) + array_wrapper((len(hidden),), dtype("u1"), alignment=False) + hidden + STOP

    report = scan(data)

    assert report.status == QUARANTINED
    assert "plain pickle.load" in report.details["findings"][0]["where"]


def test_joblib_array_data_inside_a_pickle_frame_fails():
    # A frame that extends past the wrapper would make pickle's reader and joblib's disagree.
    body = array_wrapper((1,), dtype("u1")) + b"\x00\x07" + STOP
    data = proto(4) + frame(body)

    assert scan(data, scan_joblib).status == FAILED


def test_joblib_wrapper_whose_size_cannot_be_computed_fails():
    shape_from_a_call = call(global_("mylibrary", "shape"))
    state = (text("subclass") + global_("numpy", "ndarray") + text("shape") + shape_from_a_call + text("dtype")
             + dtype("f8"))
    data = (proto(4) + global_("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT
            + MARK + state + SETITEMS + BUILD + bytes(64) + STOP)

    report = scan(data, scan_joblib)

    assert report.status == FAILED
    assert "shape" in report.message


def test_compressed_joblib_bomb_stops_at_the_byte_limit():
    data = zlib.compress(proto(4) + binbytes(bytes(2_000_000)) + STOP, 9)

    report = scan(data, scan_joblib, max_bytes=100_000)

    assert report.status == FAILED
    assert "limit" in report.message


def test_corrupt_compressed_joblib_fails(fitted_model):
    data = bytearray(dumped(lambda handle: joblib.dump(fitted_model, handle, compress=("gzip", 3))))
    data[len(data) // 2] ^= 0xFF

    assert scan(bytes(data), scan_joblib).status == FAILED


# --- PyTorch ------------------------------------------------------------------------------------

def torch_object(*, storage_key: str = "0", extra: bytes = b"") -> bytes:
    """data.pkl as torch.save writes it: {"weight": _rebuild_tensor_v2(storage, 0, (2, 2), (2, 1), ...)}."""
    storage = (MARK + unicode("storage") + global_("torch", "FloatStorage") + unicode(storage_key) + unicode("cpu")
               + integer(4) + TUPLE + BINPERSID)
    tensor = call(global_("torch._utils", "_rebuild_tensor_v2"), storage, integer(0), integer(2) + integer(2)
                  + TUPLE2, integer(2) + integer(1) + TUPLE2, NEWFALSE, call(global_("collections", "OrderedDict")))
    return proto(2) + EMPTY_DICT + MARK + unicode("weight") + tensor + extra + SETITEMS + STOP


def torch_zip(data_pkl: bytes, *, name: str = "archive/data.pkl") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data_pkl)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/data/0", bytes(16))
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def test_benign_torch_zip_is_ready():
    report = scan(torch_zip(torch_object()), scan_torch)

    assert report.status == READY, report.message
    assert report.detected_kind == "pt"
    assert report.details["torch_format"] == "zip"
    assert report.details["storages"] == 1
    assert verdicts(report) == {
        "torch._utils._rebuild_tensor_v2": ALLOWED, "torch.FloatStorage": ALLOWED,
        "collections.OrderedDict": ALLOWED,
    }


def test_torch_zip_with_os_system_in_data_pkl_is_quarantined(marker):
    evil = unicode("bias") + global_("os", "system") + MARK + shell(marker) + TUPLE + REDUCE
    report = scan(torch_zip(torch_object(extra=evil)), scan_torch)

    assert report.status == QUARANTINED
    assert "os.system" in report.message
    assert report.details["findings"][0]["where"] == "archive/data.pkl"


def test_torch_zip_is_recognised_by_every_pickle_scanner(marker):
    data = torch_zip(pickle.dumps(Reduce(os.system, f"touch {marker}"), protocol=2))

    for scanner in (scan_pickle_stream, scan_joblib, scan_torch):
        assert scan(data, scanner).status == QUARANTINED


def test_zip_without_data_pkl_is_not_a_torch_file():
    report = scan(torch_zip(torch_object(), name="archive/other.bin"), scan_torch)

    assert report.status == FAILED
    assert report.detected_kind == "zip"


def legacy_torch(object_pickle: bytes, storage: bytes) -> bytes:
    return (pickle.dumps(TORCH_LEGACY_MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
            + pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
            + object_pickle + pickle.dumps(["0"], protocol=2) + storage)


def test_legacy_torch_file_is_ready_and_its_storages_are_skipped():
    report = scan(legacy_torch(torch_object(), struct.pack("<q", 4) + bytes(16)), scan_torch)

    assert report.status == READY, report.message
    assert report.detected_kind == "pt"
    assert report.details["torch_format"] == "legacy"
    assert report.details["storage_bytes"] == 16


def test_legacy_torch_file_with_a_payload_is_quarantined(marker):
    evil = unicode("bias") + global_("subprocess", "check_output") + MARK + MARK + shell(marker) + b"l" + TUPLE + REDUCE
    report = scan(legacy_torch(torch_object(extra=evil), struct.pack("<q", 4) + bytes(16)), scan_torch)

    assert report.status == QUARANTINED
    assert "subprocess.check_output" in report.message


def test_legacy_torch_file_with_a_short_storage_fails():
    report = scan(legacy_torch(torch_object(), struct.pack("<q", 4) + bytes(10)), scan_torch)

    assert report.status == FAILED


def test_plain_pickle_is_not_a_torch_file_but_its_payload_is_still_found(marker):
    assert scan(pickle.dumps({"a": 1.0}), scan_torch).status == FAILED
    assert scan(pickle.dumps(Reduce(os.system, f"touch {marker}")), scan_torch).status == QUARANTINED


# --- malformed files: never clean ---------------------------------------------------------------

@pytest.mark.parametrize("scanner", [scan_pickle_stream, scan_joblib, scan_torch])
def test_truncated_pickle_fails(fitted_model, scanner):
    data = pickle.dumps(fitted_model, protocol=4)

    report = scan(data[: len(data) // 2], scanner)

    assert report.status == FAILED
    assert "truncated" in report.message or "frame" in report.message


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("scanner", [scan_pickle_stream, scan_joblib, scan_torch])
def test_random_bytes_fail(seed, scanner):
    data = random.Random(seed).randbytes(4096)

    assert scan(data, scanner).status == FAILED


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (pickle.dumps({"a": 1}) + b"\xff\xfe\xfd", "not a pickle"),
    (proto(4) + b"\xff" + STOP, "invalid pickle opcode"),
    (proto(6) + NONE + STOP, "unsupported pickle protocol"),
    (proto(4) + REDUCE + STOP, "stack underflow"),
    (proto(4) + binget(3) + STOP, "memo entry 3"),
    (proto(4) + text("a") + TUPLE + STOP, "MARK"),
    (proto(4) + call(text("not callable"), integer(1)) + STOP, "not callable"),
    (proto(4) + integer(1) + integer(2) + STACK_GLOBAL + STOP, "STACK_GLOBAL"),
    (proto(4) + NONE, "truncated"),
    (proto(4) + frame(NONE + STOP + NONE), "inside the same pickle frame"),
])
def test_malformed_streams_fail(data, reason):
    report = scan(data)

    assert report.status == FAILED
    assert reason in report.message


def test_opcode_limit():
    report = scan(pickle.dumps(list(range(1000))), limits=ScanLimits(max_opcodes=100))

    assert report.status == FAILED
    assert "opcodes (limit)" in report.message


def test_memo_limit():
    report = scan(pickle.dumps([str(number) for number in range(100)], protocol=4), limits=ScanLimits(max_memo=10))

    assert report.status == FAILED
    assert "memo entries (limit)" in report.message


def test_large_byte_strings_are_skipped_not_read():
    data = proto(4) + b"\x8e" + struct.pack("<Q", 50_000_000) + bytes(50_000_000) + STOP  # BINBYTES8

    report = scan(data, limits=ScanLimits(max_embedded_bytes=1024))

    assert report.status == READY
    assert report.details["opcodes"] == 3


def test_byte_limit_on_raw_files():
    report = scan(pickle.dumps(bytes(10_000)), max_bytes=1000)

    assert report.status == FAILED
    assert "limit" in report.message


def test_scan_serialized_dispatches_by_kind(marker):
    data = pickle.dumps(Reduce(os.system, f"touch {marker}"))
    for kind in ("pkl", "joblib", "pt"):
        with tempfile.TemporaryFile() as handle:
            handle.write(data)
            handle.seek(0)
            assert scan_serialized(kind, handle).status == QUARANTINED
    with pytest.raises(ValueError):
        scan_serialized("onnx", io.BytesIO(data))


# --- getattr as an attribute read, the shipped class allow-list -----------------------------------

GETATTR = global_("builtins", "getattr")
ZONEINFO = global_("zoneinfo", "ZoneInfo")


def test_getattr_reading_a_named_attribute_of_a_class_is_an_import_of_it():
    # What pickle.dumps(zoneinfo.ZoneInfo("Europe/Paris")) writes.
    data = proto(4) + call(call(GETATTR, ZONEINFO, text("_unpickle")), text("Europe/Paris"), integer(1)) + STOP

    report = scan(data)

    assert report.status == READY, report.message
    assert verdicts(report) == {"builtins.getattr": ALLOWED, "zoneinfo.ZoneInfo": ALLOWED,
                                "zoneinfo.ZoneInfo._unpickle": ALLOWED}


def test_getattr_reused_from_the_memo_for_attribute_reads_only_is_allowed():
    data = (proto(4) + GETATTR + MEMOIZE + ZONEINFO + text("_unpickle") + TUPLE2 + REDUCE + POP
            + binget(0) + ZONEINFO + text("_unpickle") + TUPLE2 + REDUCE + STOP)

    assert scan(data).status == READY


@pytest.mark.parametrize("name, body", [
    ("stored in a list", b"]" + GETATTR + b"a"),
    ("duplicated and one copy dropped", GETATTR + b"2" + POP + ZONEINFO + text("_unpickle") + TUPLE2 + REDUCE),
    ("kept in the memo and popped", GETATTR + MEMOIZE + POP + NONE),
    ("called on a string", call(GETATTR, text("os"), text("system"))),
    ("called with a computed name", call(GETATTR, ZONEINFO, call(global_("builtins", "str"), text("x")))),
    ("reaching a method of an allowed class", call(GETATTR, global_("numpy", "ndarray"), text("tofile"))),
    ("reaching a special attribute", call(GETATTR, ZONEINFO, text("__init__"))),
])
def test_getattr_used_any_other_way_is_dangerous(name, body):
    report = scan(proto(4) + body + STOP)

    assert report.status == QUARANTINED, (name, report.message)


def test_getattr_on_an_unvetted_class_is_an_unvetted_import():
    report = scan(proto(4) + call(GETATTR, global_("mylibrary.models", "Scorer"), text("from_state")) + STOP)

    assert report.status == REVIEW
    assert [item["import"] for item in report.details["unvetted"]] == [
        "mylibrary.models.Scorer", "mylibrary.models.Scorer.from_state"]


@pytest.mark.parametrize("module, name, verdict", [
    ("pandas", "DataFrame", ALLOWED), ("pandas.core.frame", "DataFrame", ALLOWED),
    ("pandas._libs.internals", "_unpickle_block", ALLOWED), ("pandas.arrays", "StringArray", ALLOWED),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked", ALLOWED), ("pandas", "read_csv", DANGEROUS),
    ("pandas.core.computation.eval", "Expr", UNVETTED), ("pandas.io.parsers.readers", "TextFileReader", DANGEROUS),
    ("pandas.core.frame", "from_records", UNVETTED), ("pandas._testing", "Thing", DANGEROUS),
    ("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper", ALLOWED),
    ("sklearn.utils._testing", "TempMemmap", DANGEROUS),
    ("sklearn.utils._testing", "assert_run_python_script_without_output", DANGEROUS),
    ("sklearn.utils", "check_random_state", UNVETTED), ("sklearn.datasets._base", "Bunch", UNVETTED),
    ("xgboost.sklearn", "XGBClassifier", ALLOWED), ("xgboost.core", "Booster", ALLOWED),
    ("xgboost.core", "DMatrix", UNVETTED), ("lightgbm.sklearn", "LGBMRegressor", ALLOWED),
    ("lightgbm.basic", "Booster", ALLOWED), ("catboost.core", "CatBoostClassifier", ALLOWED),
    ("statsmodels.regression.linear_model", "RegressionResultsWrapper", ALLOWED),
    ("statsmodels.iolib.smpickle", "load_pickle", DANGEROUS), ("statsmodels.iolib.table", "SimpleTable", UNVETTED),
    ("statsmodels.regression.tests.test_regression", "TestOLS", UNVETTED),
    ("torch.nn.modules.linear", "Linear", ALLOWED), ("torch.nn.modules.module", "register_module_forward_hook", UNVETTED),
    ("scipy.sparse._csr", "csr_matrix", ALLOWED), ("scipy.sparse", "load_npz", DANGEROUS),
    ("numpy.ma", "MaskedArray", ALLOWED), ("zoneinfo", "ZoneInfo", ALLOWED),
    ("zoneinfo._common", "load_data", DANGEROUS),
])
def test_shipped_allow_list_takes_model_classes_not_functions(module, name, verdict):
    assert classify_global(module, name)[0] == verdict


@pytest.mark.parametrize("module", ["xgboost.core", "lightgbm.basic"])
def test_a_booster_called_with_a_path_is_dangerous(module):
    # Booster(params, cache/train_set, model_file) reads a model from the path it is given.
    data = proto(2) + call(global_(module, "Booster"), NONE, NONE, text("/etc/hostname")) + STOP

    report = scan(data)

    assert report.status == QUARANTINED, report.message
    assert "Booster" in report.message


@pytest.mark.parametrize("module", ["xgboost.core", "lightgbm.basic"])
def test_a_booster_rebuilt_without_calling_it_is_ready(module):
    data = proto(2) + global_(module, "Booster") + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT + BUILD + STOP

    assert scan(data).status == READY


@pytest.mark.parametrize("reconstructor", [
    global_("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"), global_("pandas.core.indexes.base", "_new_Index"),
    global_("sklearn.neighbors._kd_tree", "newObj"),
])
def test_reconstructors_that_instantiate_their_argument_take_only_imported_classes(reconstructor):
    computed = call(global_("builtins", "str"), text("x"))

    report = scan(proto(2) + call(reconstructor, computed, integer(1)) + STOP)

    assert report.status == QUARANTINED
    assert any(finding["kind"] == "indirect_call" for finding in report.details["findings"])


def test_a_torchscript_archive_is_never_ready():
    # torch.jit.save writes compiled code under code/: the registry cannot check what it does.
    data = zip_bytes({"model/data.pkl": pickle.dumps({"w": 1}, protocol=2), "model/version": b"3\n",
                      "model/code/__torch__.py": b"def forward(self, x):\n    return x\n",
                      "model/constants.pkl": pickle.dumps((), protocol=2)})

    report = scan(data, scanner=scan_torch)

    assert report.status == FAILED
    assert "TorchScript" in report.message


def test_the_shipped_class_list_holds_only_classes_of_their_libraries():
    """Every entry that the installed libraries have is a class of that library (or its Cython
    reconstructor) whose bases are the library's, the numeric ecosystem's or abstract types."""
    import importlib

    from registry.introspection import allowlist_generate
    from registry.introspection.pickle_policy import _ALLOWED_CLASSES

    assert len(_ALLOWED_CLASSES) > 1000
    checked = 0
    for module_name, name in sorted(_ALLOWED_CLASSES):
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 - a module needing an optional dependency
            continue
        try:
            value = getattr(module, name, None)
        except ImportError:  # sklearn's experimental estimators ask for an explicit import
            continue
        if value is None:
            continue  # another release of the library: nothing to check here
        checked += 1
        library = module_name.split(".")[0]
        if name.startswith("__pyx_unpickle_"):
            assert callable(value) and (module_name, name.removeprefix("__pyx_unpickle_")) in _ALLOWED_CLASSES
            continue
        assert isinstance(value, type), f"{module_name}.{name} is not a class"
        assert value.__module__.split(".")[0] == library, f"{module_name}.{name} comes from {value.__module__}"
        assert all(allowlist_generate._safe_base(base, library) for base in value.__mro__[1:]), (module_name, name)
    assert checked > 1000
