"""A CloudFormation template resolved the way CloudFormation would for given parameters:
conditions decided, `Ref`, `Fn::GetAtt` and `Fn::Sub` replaced by the names and ARNs the
resources would get, `AWS::NoValue` dropped. Enough of the intrinsic functions for
deploy/aws/order-processor.json, and no more (an unknown one fails)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

NO_VALUE = object()
# Values for the parameters without a default: the cache's network.
CACHE_NETWORK = {
    "CacheSubnetIds": "subnet-0a1b2c3d4e5f60718,subnet-0b2c3d4e5f6071829",
    "CacheSecurityGroupIds": "sg-0123456789abcdef0",
}


@dataclass
class Stack:
    template: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    region: str = "us-east-1"
    account: str = "111122223333"

    def __post_init__(self) -> None:
        defaults = {
            name: str(spec["Default"])
            for name, spec in self.template["Parameters"].items()
            if "Default" in spec
        }
        self.parameters = {**defaults, **self.parameters}
        missing = set(self.template["Parameters"]) - set(self.parameters)
        assert not missing, f"parameters without a value: {missing}"

    # what a test reads

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        """Logical id -> resolved properties of every resource of that type."""
        return {
            logical: self.resolve(resource.get("Properties", {}))
            for logical, resource in self.template["Resources"].items()
            if resource["Type"] == kind
        }

    def output(self, name: str) -> Any:
        return self.resolve(self.template["Outputs"][name]["Value"])

    # CloudFormation's part

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in map(self.resolve, value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, argument)] = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key.startswith("Fn::"):
                return self.function(key, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def function(self, name: str, argument: Any) -> Any:
        if name == "Fn::GetAtt":
            return self.get_att(*argument)
        if name == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda match: self.variable(match[1]), argument)
        if name == "Fn::If":
            condition, then, otherwise = argument
            return self.resolve(then if self.condition(condition) else otherwise)
        if name == "Fn::Equals":
            left, right = (self.resolve(item) for item in argument)
            return left == right
        if name == "Fn::Not":
            return not self.resolve(argument[0])
        raise AssertionError(f"an intrinsic function this resolver does not know: {name}")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def variable(self, text: str) -> str:
        if "." in text:
            return str(self.get_att(*text.split(".", 1)))
        return str(self.ref(text))

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            value = self.parameters[name]
            kind = self.template["Parameters"].get(name, {}).get("Type", "String")
            if kind.startswith("List<") or kind == "CommaDelimitedList":
                return value.split(",")
            return value
        kind = self.template["Resources"][name]["Type"]
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.name_of(name)}"
        if kind == "AWS::SNS::Topic":
            return self.get_att(name, "TopicArn")
        return self.name_of(name)

    def get_att(self, name: str, attribute: str) -> str:
        kind = self.template["Resources"][name]["Type"]
        physical = self.name_of(name)
        where = f"{self.region}:{self.account}"
        arns = {
            "AWS::SQS::Queue": f"arn:aws:sqs:{where}:{physical}",
            "AWS::SNS::Topic": f"arn:aws:sns:{where}:{physical}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{where}:table/{physical}",
            "AWS::IAM::Role": f"arn:aws:iam::{self.account}:role/{physical}",
        }
        if attribute in {"Arn", "TopicArn"}:
            return arns[kind]
        if kind == "AWS::ElastiCache::ServerlessCache":
            endpoint = {
                "Endpoint.Address": f"{physical}-a1b2c3.serverless.use1.cache.amazonaws.com",
                "Endpoint.Port": "6379",
            }
            return endpoint[attribute]
        assert attribute in {"QueueName", "TopicName"}, attribute
        return physical

    def name_of(self, name: str) -> str:
        properties = self.template["Resources"][name]["Properties"]
        for key in ("QueueName", "TopicName", "TableName", "RoleName", "ServerlessCacheName"):
            if key in properties:
                return str(self.resolve(properties[key]))
        raise AssertionError(f"{name} has no name of its own")
