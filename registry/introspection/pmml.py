"""PMML: model type, version, DataDictionary and MiningSchema fields, and the signature.

Parsed with defusedxml, streaming (iterparse), with DTDs, entity declarations and external
references forbidden: a billion-laughs or XXE document fails at its DOCTYPE before anything
is expanded or fetched. PMML never needs a DTD. Elements are discarded as soon as they have
been read, so memory stays flat for a large tree ensemble.

Signature: inputs are the top model's MiningSchema fields with usageType "active" (the
default); outputs are its "predicted"/"target" fields, or, when there are none (clustering,
anomaly detection), its OutputFields. Each is a column: shape [-1]. dtypes come from the
DataDictionary (or TransformationDictionary for derived fields).
"""

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import ParseError, iterparse

from registry.introspection.headers import KIND_LABELS, detect_kind
from registry.introspection.report import FAILED, READY, Report, counted

MODEL_ELEMENTS = {
    "AnomalyDetectionModel", "AssociationModel", "BayesianNetworkModel", "BaselineModel", "ClusteringModel",
    "GaussianProcessModel", "GeneralRegressionModel", "MiningModel", "NaiveBayesModel", "NearestNeighborModel",
    "NeuralNetwork", "RegressionModel", "RuleSetModel", "Scorecard", "SequenceModel",
    "SupportVectorMachineModel", "TextModel", "TimeSeriesModel", "TreeModel",
}
DTYPES = {
    "double": "float64", "float": "float32", "integer": "int64", "string": "string", "boolean": "bool",
    "date": "datetime", "time": "datetime", "dateTime": "datetime",
}
# Counts that say how big a model is, gathered while streaming.
COUNTED_ELEMENTS = ("Segment", "Node", "Neuron", "RegressionTable", "SupportVector", "SimpleRule", "Cluster")
MAX_LISTED_FIELDS = 1000
OUTPUT_USAGE_TYPES = {"predicted", "target"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _map_dtype(data_type: str | None) -> str:
    if not data_type:
        return "unknown"
    if data_type in DTYPES:
        return DTYPES[data_type]
    if data_type.startswith(("dateDaysSince", "dateTimeSecondsSince", "timeSeconds")):
        return "int64"
    return data_type.lower()


def inspect_pmml(fileobj) -> Report:
    """Inspect a PMML document without expanding entities or fetching anything."""
    fileobj.seek(0)
    try:
        state = _read(fileobj)
    except DTDForbidden:
        return Report(FAILED, "the XML declares a DOCTYPE, which PMML does not need and which can hide entity "
                      "expansion (billion laughs) or external entities (XXE); refused unread")
    except EntitiesForbidden as error:
        return Report(FAILED, f"the XML declares entities ({error.name}); entity expansion is refused")
    except ExternalReferenceForbidden:
        return Report(FAILED, "the XML refers to an external resource; external references are refused")
    except (DefusedXmlException, ValueError) as error:
        return Report(FAILED, f"the XML was refused: {error}")
    except ParseError as error:
        detected = detect_kind(fileobj)
        if detected not in (None, "pmml", "xml"):
            return Report(FAILED, f"not PMML: the content is {KIND_LABELS[detected]}", detected_kind=detected)
        return Report(FAILED, f"not well-formed XML: {error}", detected_kind=detected)
    except RecursionError:
        return Report(FAILED, "XML nested too deeply")
    if state["root"] != "PMML":
        return Report(FAILED, f"not PMML: the root element is <{state['root']}>", detected_kind="xml")
    if not state["model_type"]:
        return Report(FAILED, "PMML document without a model element", detected_kind="pmml",
                      details=_details(state))
    return _report(state)


def _read(fileobj) -> dict:
    state = {
        "root": None, "version": None, "namespace": "", "header": {}, "model_type": None, "model": {},
        "data_fields": [], "derived_types": {}, "mining_fields": [], "output_fields": [],
        "counts": dict.fromkeys(COUNTED_ELEMENTS, 0), "model_count": 0,
    }
    stack = []
    # forbid_dtd also stops billion laughs and XXE before any entity is declared.
    events = iterparse(fileobj, events=("start", "end"), forbid_dtd=True, forbid_entities=True,
                       forbid_external=True)
    for event, element in events:
        name = _local(element.tag)
        if event == "start":
            depth = len(stack)
            if depth == 0:
                state["root"] = name
                state["version"] = element.get("version")
                state["namespace"] = _namespace(element.tag)
            elif name in MODEL_ELEMENTS:
                state["model_count"] += 1
                if depth == 1 and state["model_type"] is None:
                    state["model_type"] = name
                    state["model"] = {
                        key: element.get(key)
                        for key in ("modelName", "functionName", "algorithmName", "isScorable")
                        if element.get(key) is not None
                    }
                    state["model_depth"] = depth
            if name in state["counts"]:
                state["counts"][name] += 1
            stack.append((name, element))
            continue
        stack.pop()
        parent = stack[-1][1] if stack else None
        parent_name = stack[-1][0] if stack else None
        depth = len(stack)
        if name == "Header" and depth == 1:
            state["header"].update({
                key: element.get(key) for key in ("copyright", "description") if element.get(key)
            })
        elif name == "Application" and parent_name == "Header" and depth == 2:
            state["header"].update({
                key: element.get(attribute)
                for key, attribute in (("application", "name"), ("application_version", "version"))
                if element.get(attribute)
            })
        elif name == "DataField" and parent_name == "DataDictionary" and depth == 2:
            state["data_fields"].append({
                "name": element.get("name"), "optype": element.get("optype"), "dataType": element.get("dataType"),
            })
        elif name == "DerivedField" and parent_name == "TransformationDictionary" and depth == 2:
            state["derived_types"][element.get("name")] = element.get("dataType")
        elif name == "MiningField" and parent_name == "MiningSchema" and depth == 3 and _in_top_model(stack, state):
            state["mining_fields"].append({
                "name": element.get("name"), "usageType": element.get("usageType", "active"),
                "optype": element.get("optype"),
            })
        elif name == "OutputField" and parent_name == "Output" and depth == 3 and _in_top_model(stack, state):
            state["output_fields"].append({
                "name": element.get("name"), "feature": element.get("feature", "predictedValue"),
                "dataType": element.get("dataType"), "optype": element.get("optype"),
            })
        # Forget what has been read: the parser keeps every element otherwise.
        element.clear()
        if parent is not None:
            parent.remove(element)
    return state


def _in_top_model(stack, state) -> bool:
    return len(stack) >= 2 and stack[1][0] == state["model_type"] and state.get("model_depth") == 1


def _details(state) -> dict:
    return {
        "pmml_version": state["version"],
        "namespace": state["namespace"],
        "header": state["header"],
        "model_type": state["model_type"],
        "model": state["model"],
        "model_element_count": state["model_count"],
        "element_counts": {key: value for key, value in state["counts"].items() if value},
        "data_dictionary": state["data_fields"][:MAX_LISTED_FIELDS],
        "data_dictionary_count": len(state["data_fields"]),
        "mining_schema": state["mining_fields"][:MAX_LISTED_FIELDS],
        "output_fields": state["output_fields"][:MAX_LISTED_FIELDS],
    }


def _report(state) -> Report:
    types = {field["name"]: field["dataType"] for field in state["data_fields"]}
    optypes = {field["name"]: field["optype"] for field in state["data_fields"]}
    for name, data_type in state["derived_types"].items():
        types.setdefault(name, data_type)

    def column(name, data_type, optype):
        field = {"name": name, "dtype": _map_dtype(data_type), "shape": [-1]}
        if optype == "continuous":
            field["profile"] = "numerical"
        return field

    inputs = [
        column(field["name"], types.get(field["name"]), field["optype"] or optypes.get(field["name"]))
        for field in state["mining_fields"] if field["usageType"] == "active"
    ]
    outputs = [
        column(field["name"], types.get(field["name"]), field["optype"] or optypes.get(field["name"]))
        for field in state["mining_fields"] if field["usageType"] in OUTPUT_USAGE_TYPES
    ]
    if not outputs:
        outputs = [
            column(field["name"], field["dataType"] or types.get(field["name"]), field["optype"])
            for field in state["output_fields"]
        ]
    details = _details(state)
    version = state["version"] or "unknown"
    message = (f"PMML {version} {state['model_type']}, {counted(len(inputs), 'active field')}, "
               f"{counted(len(outputs), 'output field')}")
    return Report(READY, message, detected_kind="pmml", details=details,
                  signature={"inputs": inputs, "outputs": outputs})
