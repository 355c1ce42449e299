"""Logical ids and intrinsic functions. The template's resources are those of
`Resources(PREFIX)`, whose names then read `${Prefix}-order-commands.fifo`: exactly the
`Fn::Sub` strings the template needs."""

from __future__ import annotations

from typing import Any

from order_processor.deployment.iam import Arns
from order_processor.deployment.resources import FIFO_SUFFIX, Resources

PREFIX = "${Prefix}"
NO_VALUE = {"Ref": "AWS::NoValue"}


def template_resources() -> Resources:
    return Resources(PREFIX)


def template_arns() -> Arns:
    """ARNs of the stack's own account, region and partition, for `Fn::Sub`."""
    return Arns(template_resources(), "${AWS::Region}", "${AWS::AccountId}", "${AWS::Partition}")


def logical_id(name: str, kind: str) -> str:
    """`${Prefix}-order-commands-dlq.fifo`, `Queue` -> `OrderCommandsDlqQueue`."""
    bare = name.removeprefix(PREFIX + "-").removesuffix(FIFO_SUFFIX)
    return "".join(part.capitalize() for part in bare.split("-")) + kind


def bare(name: str) -> str:
    """`${Prefix}-order-commands.fifo` -> `order-commands.fifo`, for texts CloudFormation
    does not substitute (an output's description)."""
    return name.removeprefix(PREFIX + "-")


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def get_att(logical: str, attribute: str = "Arn") -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical, attribute]}


def sub(text: str) -> Any:
    """`Fn::Sub` when the text has a variable, else the text."""
    return {"Fn::Sub": text} if "${" in text else text


def subbed(value: Any) -> Any:
    """A JSON document with every string that names a variable wrapped in `Fn::Sub`."""
    if isinstance(value, dict):
        return {key: subbed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [subbed(item) for item in value]
    if isinstance(value, str):
        return sub(value)
    return value
