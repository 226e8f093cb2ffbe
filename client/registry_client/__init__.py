"""Python client of the model registry: notebooks, CI and the `regctl` command-line tool.

    from registry_client import Registry
    reg = Registry("https://registry.example", token="...")   # or REGISTRY_URL / REGISTRY_TOKEN
    model = reg.context("fraud").model("churn-classifier", create=True, tags=["tabular"])
    v = model.create_version(hyperparameters={"C": 1.0}, framework="scikit-learn")
    v.upload("pkl", "model.pkl")
    v.log_metrics({"auc": 0.91}, step=3)
    v.publish()
    path = reg.context("fraud").model("churn-classifier").alias("production").get_model("pkl")

    import registry_client
    path = registry_client.load("fraud/churn-classifier@production", kind="pkl")   # the same, in one call
    registry_client.login("https://registry.example")          # once: the token asked for, saved mode 600
    registry_client.prepare(clf, X[:20], "artifact-dir")       # score.py, runtime.yaml, schemas; then verify()

    from registry_client import webhooks
    event = webhooks.verify(body, headers["X-Registry-Signature"], secret)   # in a webhook receiver

Importing this package never imports Django, numpy or pandas.
"""

__version__ = "0.2.0"

from registry_client.artifact import PrepareError, PreparedFolder, VerifyResult, prepare, verify  # noqa: E402
from registry_client.client import (  # noqa: E402
    Attachment,
    Context,
    Format,
    FormatSummary,
    Model,
    Record,
    RecordRef,
    RecordVersion,
    Registry,
    Version,
    load,
)
from registry_client.errors import (  # noqa: E402
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    MoveRequested,
    NotCached,
    NotFound,
    OfflineError,
    PayloadTooLarge,
    RegistryError,
    ServerError,
    TamperError,
    TamperWarning,
    TransportError,
    Unauthorized,
)
from registry_client.fetchers import FetchError, NoFetcher, https_fetcher, register_fetcher  # noqa: E402
from registry_client.login import LoginResult, login  # noqa: E402
from registry_client.manifest import Manifest, ManifestFile  # noqa: E402
from registry_client.signature import infer_signature, named_signatures, signatures_of  # noqa: E402
from registry_client.uris import VersionURI, parse_version_uri  # noqa: E402

__all__ = [
    "Attachment",
    "BadRequest", "ConfigError", "Conflict", "Context", "FetchError", "Forbidden", "Format", "FormatSummary",
    "LoginResult", "Manifest", "ManifestFile", "Model", "MoveRequested", "NoFetcher", "NotCached", "NotFound",
    "OfflineError", "PayloadTooLarge", "PrepareError", "PreparedFolder", "Record", "RecordRef", "RecordVersion",
    "Registry", "RegistryError", "ServerError", "TamperError", "TamperWarning", "TransportError", "Unauthorized",
    "VerifyResult", "Version", "VersionURI", "https_fetcher", "infer_signature", "load", "login", "named_signatures",
    "parse_version_uri", "prepare", "register_fetcher", "signatures_of", "verify",
]
