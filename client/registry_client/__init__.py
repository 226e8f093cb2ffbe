"""Python client of the model registry: notebooks, CI and the `regctl` command-line tool.

    from registry_client import Registry
    reg = Registry("https://registry.example", token="...")   # or REGISTRY_URL / REGISTRY_TOKEN
    model = reg.context("fraud").model("churn-classifier", create=True, tags=["tabular"])
    v = model.create_version(hyperparameters={"C": 1.0}, framework="scikit-learn")
    v.upload("pkl", "model.pkl")
    v.log_metrics({"auc": 0.91}, step=3)
    v.publish()
    path = reg.context("fraud").model("churn-classifier").alias("production").get_model("pkl")

Importing this package never imports Django, numpy or pandas.
"""

__version__ = "0.1.0"

from registry_client.client import Artifact, Context, Model, Record, Registry, Version  # noqa: E402
from registry_client.errors import (  # noqa: E402
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RegistryError,
    ServerError,
    TamperError,
    TamperWarning,
    TransportError,
    Unauthorized,
)
from registry_client.manifest import Manifest, ManifestFile  # noqa: E402
from registry_client.signature import infer_signature  # noqa: E402

__all__ = [
    "Artifact", "BadRequest", "ConfigError", "Conflict", "Context", "Forbidden", "Manifest", "ManifestFile",
    "Model", "NotFound", "PayloadTooLarge", "Record", "Registry", "RegistryError", "ServerError", "TamperError",
    "TamperWarning", "TransportError", "Unauthorized", "Version", "infer_signature",
]
