"""Reading synthesized CloudFormation templates by meaning, never by hashed ids."""

from __future__ import annotations

from typing import Any

Template = dict[str, Any]


def resources(template: Template, type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def functions_by_family(template: Template) -> dict[str, tuple[str, dict[str, Any]]]:
    """EMD_FAMILIES -> (logical id, properties) of each family Lambda."""
    found = {}
    for logical_id, res in resources(template, "AWS::Lambda::Function").items():
        props = res["Properties"]
        family = props.get("Environment", {}).get("Variables", {}).get("EMD_FAMILIES")
        if family:
            found[family] = (logical_id, props)
    return found


def role_of(function_props: dict[str, Any]) -> str:
    return function_props["Role"]["Fn::GetAtt"][0]


def statements_of_role(template: Template, role_id: str) -> list[dict[str, Any]]:
    """Every statement of every AWS::IAM::Policy attached to the role."""
    out: list[dict[str, Any]] = []
    for res in resources(template, "AWS::IAM::Policy").values():
        props = res["Properties"]
        if {"Ref": role_id} in props.get("Roles", []):
            out.extend(props["PolicyDocument"]["Statement"])
    return out


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else list(value)


def listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resource_paths(template: Template) -> dict[str, str]:
    """logical id of each AWS::ApiGateway::Resource -> its full path."""
    res = resources(template, "AWS::ApiGateway::Resource")

    def path(logical_id: str) -> str:
        props = res[logical_id]["Properties"]
        parent = props["ParentId"]
        prefix = path(parent["Ref"]) if "Ref" in parent else ""
        return f"{prefix}/{props['PathPart']}"

    return {logical_id: path(logical_id) for logical_id in res}


def routes(template: Template) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path) -> the method's Integration."""
    paths = resource_paths(template)
    out = {}
    for res in resources(template, "AWS::ApiGateway::Method").values():
        props = res["Properties"]
        out[(props["HttpMethod"], paths[props["ResourceId"]["Ref"]])] = props | {
            "Integration": props["Integration"]
        }
    return out


def integration_function(integration: dict[str, Any]) -> str:
    """The logical id of the Lambda an AWS_PROXY integration URI points at."""
    parts = integration["Uri"]["Fn::Join"][1]
    (function_id,) = [
        p["Fn::GetAtt"][0] for p in parts if isinstance(p, dict) and "Fn::GetAtt" in p
    ]
    return function_id


def join_text(value: Any) -> str:
    """A Fn::Join rendered with `{...}` for each intrinsic, to compare shapes."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(join_text(p) for p in parts)
    if "Ref" in value:
        return "{" + value["Ref"] + "}"
    if "Fn::GetAtt" in value:
        return "{" + ".".join(value["Fn::GetAtt"]) + "}"
    if "Fn::FindInMap" in value:
        return "{FindInMap}"
    return "{?}"
