"""Benign model files made by the libraries themselves: every one must scan `ready`.

Estimators, pipelines and ColumnTransformers from scikit-learn, xgboost and lightgbm models,
statsmodels results, catboost models, PyTorch modules, tensors and optimizer states (torch.save zips and legacy files),
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

def statistics_models():
    """statsmodels results (arrays and pandas, formulas, time series) and catboost models."""
    import catboost
    import statsmodels.api as sm
    import statsmodels.formula.api as smf
    from statsmodels.tsa.arima.model import ARIMA

    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 3))
    target = features @ [1.0, 2.0, 3.0] + rng.normal(size=60)
    labels = (target > 0).astype(int)
    frame = pd.DataFrame(features, columns=["a", "b", "c"]).assign(y=target, g=["x", "y"] * 30)
    yield "sm_ols", sm.OLS(target, sm.add_constant(features)).fit()
    yield "sm_logit", sm.Logit(labels, sm.add_constant(features)).fit(disp=0)
    yield "sm_glm", sm.GLM(labels, sm.add_constant(features), family=sm.families.Binomial()).fit()
    yield "sm_ols_pandas", sm.OLS(frame["y"], sm.add_constant(frame[["a", "b", "c"]])).fit()
    yield "sm_formula", smf.ols("y ~ a + b + C(g)", data=frame).fit()
    yield "sm_arima", ARIMA(target, order=(1, 0, 0)).fit()
    yield "catboost_classifier", catboost.CatBoostClassifier(iterations=3, verbose=0, allow_writing_files=False).fit(features, labels)
    yield "catboost_regressor", catboost.CatBoostRegressor(iterations=3, verbose=0, allow_writing_files=False).fit(features, target)


def torch_modules():
    """PyTorch modules and tensors, saved whole and as state dicts (see torch_files)."""
    import torch
    from torch import nn

    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16)
    yield "torch_linear", nn.Linear(4, 2)
    yield "torch_mlp", nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.BatchNorm1d(8), nn.Linear(8, 1),
                                     nn.Sigmoid())
    yield "torch_conv", nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2), nn.Flatten())
    yield "torch_lstm", nn.LSTM(4, 8, batch_first=True)
    yield "torch_transformer", nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    yield "torch_embedding", nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4), nn.GELU(), nn.SiLU())
    yield "torch_attention", nn.MultiheadAttention(8, 2)
    yield "torch_tensors", {"f16": torch.zeros(2, 3, dtype=torch.float16), "i64": torch.ones(3, dtype=torch.int64),
                            "bool": torch.tensor([True]), "bf16": torch.zeros(2, dtype=torch.bfloat16),
                            "c64": torch.zeros(2, dtype=torch.complex64), "view": torch.arange(12.0).reshape(3, 4).t(),
                            "sparse": torch.eye(3).to_sparse(), "param": nn.Parameter(torch.ones(2)),
                            "quantized": torch.quantize_per_tensor(torch.rand(4), 0.1, 10, torch.quint8)}
    yield "torch_optimizer_state", torch.optim.Adam(nn.Linear(2, 2).parameters()).state_dict()


def torch_files():
    """(name, "pt", bytes): torch.save zips and legacy files of every module, whole and state dict."""
    import torch

    for name, obj in torch_modules():
        saved = [("whole", obj)] + ([("state_dict", obj.state_dict())] if hasattr(obj, "state_dict") and
                                    isinstance(obj, torch.nn.Module) else [])
        for label, value in saved:
            for zipped in (True, False):
                buffer = io.BytesIO()
                torch.save(value, buffer, _use_new_zipfile_serialization=zipped)
                yield f"{name}.{label}.{'zip' if zipped else 'legacy'}.pt", "pt", buffer.getvalue()


def objects():
    """(name, object) of every benign object in the corpus."""
    yield from arrays()
    yield from frames()
    yield from models()
    yield from statistics_models()

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
    yield from torch_files()
