"""Benign model files made by the libraries themselves: every one must scan `ready`.

Estimators, pipelines and ColumnTransformers from scikit-learn, xgboost and lightgbm models,
pandas frames and series of every dtype, numpy arrays (structured, object, masked), scipy
sparse matrices and plain Python values, each written with pickle protocols 2 to 5 and with
joblib.dump uncompressed and with every compressor it has (lz4 when installed). Used by the
benign-corpus test and by bench/scanners.py.
"""

import collections
import datetime
import decimal
import fractions
import io
import pickle
import uuid
import warnings

import joblib
import lightgbm
import numpy as np
import pandas as pd
import scipy.sparse as sp
import xgboost
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    LabelEncoder,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    StandardScaler,
)
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

warnings.filterwarnings("ignore")  # convergence warnings of the tiny fits

X, y = make_classification(n_samples=120, n_features=6, random_state=0)
Xr, yr = make_regression(n_samples=80, n_features=4, random_state=0)
def frames():
    n = 6
    df = pd.DataFrame({
        "i": np.arange(n), "f": np.linspace(0, 1, n), "b": [True, False] * 3, "s": list("abcdef"),
        "cat": pd.Categorical(list("xyzxyz")), "dt": pd.date_range("2024-01-01", periods=n),
        "dttz": pd.date_range("2024-01-01", periods=n, tz="UTC"), "td": pd.to_timedelta(np.arange(n), unit="h"),
        "I64": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"), "F": pd.array([1.0, None, 3, 4, 5, 6], dtype="Float64"),
        "B": pd.array([True, None, False, True, True, False], dtype="boolean"),
        "str": pd.array(list("abcdef"), dtype="string"), "obj": [1, "a", 2.0, None, (1,), b"x"],
        "per": pd.period_range("2024-01", periods=n, freq="M"), "iv": pd.interval_range(0, n),
        "sparse": pd.arrays.SparseArray([0, 0, 1, 0, 2, 0]), "c128": np.arange(n) * (1 + 1j),
        "u8": np.arange(n, dtype="uint8"), "f16": np.arange(n, dtype="float16"),
    })
    yield "frame_all", df
    yield "frame_multiindex", df.set_index(["i", "s"])
    yield "series_cat", pd.Series(pd.Categorical(["a", "b", "a"], categories=["a", "b", "c"], ordered=True))
    yield "series_dt", pd.Series(pd.date_range("2020", periods=3, tz="Europe/Paris"))
    yield "frame_cat_only", pd.DataFrame({"c": pd.Categorical(list("abca"))})
    yield "index_range", pd.RangeIndex(10)
    yield "series_str_pyarrow_free", pd.Series(["x", "y"], dtype=object)
    yield "timestamp", pd.Timestamp("2024-01-01", tz="UTC")
    yield "timedelta", pd.Timedelta("1h")
    yield "period", pd.Period("2024-01", freq="M")
    yield "na", [pd.NA, pd.NaT]
    yield "dateoffset", pd.tseries.offsets.MonthEnd(2)
def arrays():
    yield "arr_f64", np.arange(10.0)
    yield "arr_struct", np.zeros(3, dtype=[("a", "i4"), ("b", "f8"), ("c", "U3")])
    yield "arr_obj", np.array([1, "a", None, {"k": 1}], dtype=object)
    yield "arr_bool", np.array([True, False])
    yield "arr_dt", np.array(["2024-01-01"], dtype="datetime64[ns]")
    yield "arr_c", np.arange(4, dtype=complex).reshape(2, 2)
    yield "masked", np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    yield "matrix", np.matrix([[1, 2]])
    yield "scalars", [np.float32(1), np.int64(2), np.bool_(True), np.str_("x")]
    yield "rng", np.random.default_rng(0)
    yield "randomstate", np.random.RandomState(0)
    for name in ("csr_matrix", "csc_matrix", "coo_matrix", "csr_array", "lil_matrix", "dok_matrix", "bsr_matrix",
                 "dia_matrix", "coo_array"):
        yield name.replace("_matrix", ""), getattr(sp, name)(np.eye(4))
    yield "stdlib_values", [  # the standard library's value types
        collections.OrderedDict(a=1), collections.Counter("ab"), collections.deque([1]), datetime.datetime.now(datetime.timezone.utc), decimal.Decimal("1.1"), fractions.Fraction(1, 3), uuid.uuid4(), {1, 2}, frozenset([3]), complex(1, 2), bytearray(b"x"), slice(1, 2), range(3)]
def models():
    yield "logreg", LogisticRegression().fit(X, y)
    yield "rf", RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    yield "gb", GradientBoostingClassifier(n_estimators=3).fit(X, y)
    yield "hgb", HistGradientBoostingClassifier(max_iter=3).fit(X, y)
    yield "hgbr", HistGradientBoostingRegressor(max_iter=3).fit(Xr, yr)
    yield "iso", IsolationForest(n_estimators=3, random_state=0).fit(X)
    yield "svc", SVC(probability=True).fit(X, y)
    yield "knn", KNeighborsClassifier().fit(X, y)
    yield "kmeans", KMeans(n_clusters=2, n_init=1).fit(X)
    yield "pca", PCA(2).fit(X)
    yield "mlp", MLPClassifier(max_iter=20).fit(X, y)
    yield "nb", GaussianNB().fit(X, y)
    yield "sgd", SGDClassifier().fit(X, y)
    yield "ridge", Ridge().fit(Xr, yr)
    yield "tree", DecisionTreeClassifier().fit(X, y)
    yield "pipe_log1p", make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression()).fit(np.abs(X), y)
    yield "grid", GridSearchCV(LogisticRegression(), {"C": [0.1, 1]}, cv=2).fit(X, y)
    yield "calibrated", CalibratedClassifierCV(LogisticRegression(), cv=2).fit(X, y)
    yield "stack", StackingClassifier([("a", LogisticRegression()), ("b", GaussianNB())], cv=2).fit(X, y)
    yield "voting", VotingClassifier([("a", LogisticRegression()), ("b", GaussianNB())], voting="soft").fit(X, y)
    text = ["the cat", "a dog", "cats and dogs", "the end"]
    yield "tfidf", TfidfVectorizer().fit(text)
    yield "count", CountVectorizer(ngram_range=(1, 2)).fit(text)
    df = pd.DataFrame({"num": np.arange(8.0), "cat": list("abababab"), "c2": pd.Categorical(list("xyxyxyxy"))})
    ct = ColumnTransformer([("n", make_pipeline(SimpleImputer(), StandardScaler()), ["num"]),
                            ("c", OneHotEncoder(handle_unknown="ignore"), ["cat", "c2"])])
    yield "columntransformer", make_pipeline(ct, LogisticRegression()).fit(df, [0, 1] * 4)
    yield "ordinal", OrdinalEncoder().fit(df[["cat"]])
    yield "labelenc", LabelEncoder().fit(["a", "b"])
    yield "poly_kbins", make_pipeline(PolynomialFeatures(2), KBinsDiscretizer(n_bins=2)).fit(X)
    yield "svd", TruncatedSVD(2).fit(sp.csr_matrix(X))
    yield "xgb_clf", xgboost.XGBClassifier(n_estimators=3).fit(X, y)
    yield "xgb_reg", xgboost.XGBRegressor(n_estimators=3).fit(Xr, yr)
    yield "xgb_booster", xgboost.train({}, xgboost.DMatrix(X, label=y), 2)
    yield "lgbm_clf", lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)
    yield "lgbm_reg", lightgbm.LGBMRegressor(n_estimators=3, verbose=-1).fit(Xr, yr)
    yield "lgbm_booster", lightgbm.train({"verbose": -1}, lightgbm.Dataset(X, label=y), 2)

def objects():
    """(name, object) of every benign object in the corpus."""
    yield from arrays()
    yield from frames()
    yield from models()

COMPRESSIONS = [0, 1, 3, 9, ("xz", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3)]
try:
    import lz4  # noqa: F401  (joblib's lz4 compression needs it)

    COMPRESSIONS.append(("lz4", 3))
except ImportError:
    pass


def serialized(obj):
    """(file name suffix, kind, bytes) for every way the object is written."""
    for protocol in (2, 3, 4, 5):
        yield f"p{protocol}.pkl", "pkl", pickle.dumps(obj, protocol=protocol)
    for compress in COMPRESSIONS:
        buffer = io.BytesIO()
        joblib.dump(obj, buffer, compress=compress)
        label = compress if isinstance(compress, int) else compress[0]
        yield f"c{label}.joblib", "joblib", buffer.getvalue()


def files():
    """(name, kind, bytes) of the whole corpus."""
    for name, obj in objects():
        for suffix, kind, data in serialized(obj):
            yield f"{name}.{suffix}", kind, data
