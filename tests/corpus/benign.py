"""Benign model files made by the libraries themselves: what real users upload.

    benign_corpus() -> list[Sample]

The registry must report every one READY. Builders are small, deterministic (fixed seeds) and
cached per process; extend BUILDERS (name -> callable returning list[Sample]) to add families.
"""

from __future__ import annotations

import functools
import io
import pickle
import warnings

from tests.corpus import wrappers
from tests.corpus.opcodes import (
    EMPTY_DICT, MARK, NEWFALSE, SETITEMS, STOP, TUPLE, TUPLE2, call, global_, integer, proto, text,
)
from tests.corpus.sample import Sample

PROTOCOLS = (2, 3, 4, 5)
JOBLIB_COMPRESSIONS = (None, "zlib", "gzip", "bz2", "xz", "lzma", "lz4")


def _joblib_bytes(value, compress) -> bytes:
    import joblib

    buffer = io.BytesIO()
    # joblib.dump to a file object needs the method name in `compress` ((method, level)).
    joblib.dump(value, buffer, compress=(compress, 3) if compress else 0)
    return buffer.getvalue()


def _numpy_values() -> dict:
    import numpy

    rng = numpy.random.default_rng(0)
    return {
        "float64-matrix": rng.normal(size=(8, 4)),
        "float32-fortran": numpy.asfortranarray(rng.normal(size=(5, 3)).astype("float32")),
        "int64-vector": numpy.arange(100, dtype="int64"),
        "bool-mask": rng.random(16) > 0.5,
        "unicode-labels": numpy.array(["cat", "dog", "bird"]),
        "structured": numpy.array([(1, 2.0), (3, 4.0)], dtype=[("a", "i4"), ("b", "f8")]),
        "datetime64": numpy.array(["2024-01-01", "2024-06-30"], dtype="datetime64[D]"),
        "scalar-and-dtype": {"scale": numpy.float32(1.5), "dtype": numpy.dtype("int16"), "n": numpy.int64(3)},
        "object-array-of-strings": numpy.array(["a", None, "c"], dtype=object),
        "random-state": numpy.random.RandomState(0),
        "generator": numpy.random.default_rng(1),
    }


def _sklearn_models() -> dict:
    import numpy
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeRegressor

    rng = numpy.random.RandomState(0)
    X = rng.normal(size=(40, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "logistic-regression": LogisticRegression().fit(X, y),
            "linear-regression": LinearRegression().fit(X, X[:, 2]),
            "random-forest": RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y),
            "gradient-boosting": GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, y),
            "decision-tree-regressor": DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, X[:, 0]),
            "svc-probability": SVC(probability=True, random_state=0).fit(X, y),
            "knn": KNeighborsClassifier(n_neighbors=3).fit(X, y),
            "pipeline-scaler-pca-logreg": make_pipeline(StandardScaler(), PCA(n_components=2),
                                                        LogisticRegression()).fit(X, y),
            "function-transformer-log1p": make_pipeline(FunctionTransformer(numpy.log1p),
                                                        LinearRegression()).fit(numpy.abs(X), y),
            "column-transformer-onehot": ColumnTransformer([("city", OneHotEncoder(), [0])]).fit(
                numpy.array([["a"], ["b"], ["a"]], dtype=object)),
            "tfidf": TfidfVectorizer().fit(["a cat sat", "a dog ran", "the cat ran"]),
        }


def _pandas_frames() -> dict:
    import numpy
    import pandas

    frame = pandas.DataFrame({"age": [31, 45, 27], "income": [52000.0, 61000.5, 38000.0],
                              "city": pandas.Categorical(["Oslo", "Lima", "Oslo"])})
    return {
        "dataframe-mixed": frame,
        "series-float": pandas.Series(numpy.linspace(0, 1, 5), name="score"),
        "dataframe-datetime-index": pandas.DataFrame({"v": [1, 2]}, index=pandas.date_range("2024-01-01", periods=2)),
    }


def _pickled(family: str, values: dict) -> list[Sample]:
    return [Sample(f"{family}/{name}/pickle-p{protocol}", pickle.dumps(value, protocol=protocol), "pkl", family)
            for name, value in values.items() for protocol in PROTOCOLS]


def _joblibbed(family: str, values: dict, names: tuple[str, ...]) -> list[Sample]:
    samples = []
    for name in names:
        for compress in JOBLIB_COMPRESSIONS:
            samples.append(Sample(f"{family}/{name}/joblib-{compress or 'raw'}", _joblib_bytes(values[name], compress),
                                  "joblib", family))
    return samples


def numpy_samples() -> list[Sample]:
    values = _numpy_values()
    return _pickled("numpy", values) + _joblibbed("numpy", values, ("float64-matrix", "object-array-of-strings",
                                                                     "structured"))


def sklearn_samples() -> list[Sample]:
    models = _sklearn_models()
    samples = _pickled("sklearn", models)
    samples += _joblibbed("sklearn", models, ("logistic-regression", "random-forest", "pipeline-scaler-pca-logreg"))
    samples.append(Sample("sklearn/logistic-regression/artifact-zip",
                          wrappers.artifact_zip(pickle.dumps(models["logistic-regression"], protocol=4)),
                          "artifact", "sklearn"))
    samples.append(Sample("sklearn/random-forest/joblib-raw-as-pkl", _joblib_bytes(models["random-forest"], None),
                          "pkl", "sklearn"))
    return samples


def pandas_samples() -> list[Sample]:
    frames = _pandas_frames()
    return _pickled("pandas", frames) + _joblibbed("pandas", frames, ("dataframe-mixed",))


def torch_samples() -> list[Sample]:
    """A state dict as torch.save writes it (hand-assembled: torch is not a test dependency)."""
    storage = (MARK + text("storage") + global_("torch", "FloatStorage") + text("0") + text("cpu")
               + integer(4) + TUPLE + b"Q")  # BINPERSID
    tensor = call(global_("torch._utils", "_rebuild_tensor_v2"), storage, integer(0),
                  integer(2) + integer(2) + TUPLE2, integer(2) + integer(1) + TUPLE2, NEWFALSE,
                  call(global_("collections", "OrderedDict")))
    data_pkl = proto(2) + EMPTY_DICT + MARK + text("linear.weight") + tensor + SETITEMS + STOP
    return [Sample("torch/state-dict/pt-zip", wrappers.torch_zip(data_pkl), "pt", "torch")]


def library_corpus_samples() -> list[Sample]:
    """The benign-corpus test's files (tests/registry/introspection/benign_corpus.py): every
    library the allow-list names, pickle protocols 2-5 and joblib at every compression."""
    from tests.registry.introspection import benign_corpus

    return [Sample(f"library/{name}", data, kind, "library") for name, kind, data in benign_corpus.files()]


BUILDERS = {
    "numpy": numpy_samples,
    "sklearn": sklearn_samples,
    "pandas": pandas_samples,
    "torch": torch_samples,
    "library": library_corpus_samples,
}


@functools.lru_cache(maxsize=None)
def _cached(family: str) -> tuple[Sample, ...]:
    return tuple(BUILDERS[family]())


def benign_corpus(families: tuple[str, ...] | None = None) -> list[Sample]:
    """Every benign sample (or those of `families`); a family whose library is missing is skipped."""
    samples = []
    for family in families or tuple(BUILDERS):
        try:
            samples.extend(_cached(family))
        except ImportError:
            continue
    return samples


if __name__ == "__main__":  # python -m tests.corpus.benign
    for sample in benign_corpus():
        print(f"{sample.kind:9} {len(sample.data):8}  {sample.name}")
