"""Create the template's stateful resources in the local AWS endpoint (moto).

Data flow: ``ResourceFactory.create_all()`` walks the template's ``AWS::DynamoDB::Table``,
``AWS::Serverless::SimpleTable``, ``AWS::S3::Bucket``, ``AWS::SQS::Queue``,
``AWS::SecretsManager::Secret`` and ``AWS::SSM::Parameter`` resources. Each one's Properties are
resolved with the ``Resolver``; a resource that references another not created yet is retried after
it (so a queue is created after the dead-letter queue its ``RedrivePolicy`` points at). Creation is
idempotent: a resource that already exists in the endpoint is reused (and brought in line where
that is cheap: queue attributes, a missing table stream, TTL). After each creation the resource's
``Ref`` and ``Fn::GetAtt`` values, as AWS would return them, are registered with the resolver, and
the ``LocalResource`` (physical name, ARN, queue URL, stream ARN) is kept for the event pollers.

Physical names: the ``TableName``/``BucketName``/``QueueName``/``Name`` property when present,
otherwise ``fhir-platform-local-<LogicalId>`` (lower-case for buckets), so names are stable across
runs. Every other resource type is not emulated: its ``Ref`` resolves to a placeholder name and its
``Arn`` to a placeholder ARN, so environment variables that mention it still resolve.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from local_stack.template import ACCOUNT_ID, STACK_NAME, Resolver, Template, TemplateError, Unresolved

log = logging.getLogger("local_stack")

EMULATED_TYPES = (
    "AWS::DynamoDB::Table",
    "AWS::Serverless::SimpleTable",
    "AWS::S3::Bucket",
    "AWS::SQS::Queue",
    "AWS::SecretsManager::Secret",
    "AWS::SSM::Parameter",
)
# Handled elsewhere (functions, APIs) or meaningless locally (IAM, permissions, logs, layers, alarms).
HANDLED_ELSEWHERE = ("AWS::Serverless::Function", "AWS::Serverless::HttpApi")


@dataclass
class LocalResource:
    logical_id: str
    type: str
    name: str
    arn: str
    url: str | None = None  # queues
    stream_arn: str | None = None  # tables with a stream
    properties: dict[str, Any] = field(default_factory=dict)  # resolved


class ResourceFactory:
    def __init__(self, template: Template, resolver: Resolver, clients: Any) -> None:
        self.template = template
        self.resolver = resolver
        self.clients = clients
        self.region = resolver.region
        self.resources: dict[str, LocalResource] = {}

    def create_all(self) -> dict[str, LocalResource]:
        self._register_placeholders()
        pending = [(lid, res) for lid, res in self.template.all_resources.items() if res.get("Type") in EMULATED_TYPES]
        while pending:
            postponed: list[tuple[str, dict[str, Any]]] = []
            blocked: list[Unresolved] = []
            for logical_id, resource in pending:
                try:
                    properties = self.resolver.resolve(resource.get("Properties") or {})
                except Unresolved as exc:
                    postponed.append((logical_id, resource))
                    blocked.append(exc)
                    continue
                created = self._create(logical_id, resource["Type"], properties)
                self.resources[logical_id] = created
            if len(postponed) == len(pending):
                details = "; ".join(f"{lid}: {exc}" for (lid, _), exc in zip(postponed, blocked, strict=True))
                raise TemplateError(f"circular or unsupported references between resources: {details}")
            pending = postponed
        return self.resources

    def by_arn(self, arn: str) -> LocalResource | None:
        return next((r for r in self.resources.values() if arn in (r.arn, r.stream_arn)), None)

    # --- placeholders for what is not emulated ------------------------------------------------------

    def _register_placeholders(self) -> None:
        skipped: dict[str, list[str]] = {}
        for logical_id, resource in self.template.all_resources.items():
            rtype = str(resource.get("Type"))
            if rtype in EMULATED_TYPES or rtype in HANDLED_ELSEWHERE:
                continue
            skipped.setdefault(rtype, []).append(logical_id)
            service = rtype.split("::")[1].lower() if rtype.count("::") >= 2 else "unknown"
            name = f"{STACK_NAME}-{logical_id}"
            arn = f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{logical_id.lower()}/{name}"
            self.resolver.register(logical_id, name, {"Arn": arn, "Name": name})
        if skipped:
            log.info(
                "not emulated locally (Ref/Arn resolve to placeholders): %s",
                ", ".join(f"{t} ({len(ids)})" for t, ids in sorted(skipped.items())),
            )

    # --- per type -----------------------------------------------------------------------------------

    def _create(self, logical_id: str, rtype: str, props: dict[str, Any]) -> LocalResource:
        if rtype == "AWS::DynamoDB::Table":
            return self._table(logical_id, props)
        if rtype == "AWS::Serverless::SimpleTable":
            return self._simple_table(logical_id, props)
        if rtype == "AWS::S3::Bucket":
            return self._bucket(logical_id, props)
        if rtype == "AWS::SQS::Queue":
            return self._queue(logical_id, props)
        if rtype == "AWS::SecretsManager::Secret":
            return self._secret(logical_id, props)
        if rtype == "AWS::SSM::Parameter":
            return self._parameter(logical_id, props)
        raise AssertionError(rtype)

    def _table(self, logical_id: str, props: dict[str, Any]) -> LocalResource:
        ddb = self.clients.dynamodb
        name = props.get("TableName") or f"{STACK_NAME}-{logical_id}"
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
        }
        billing = props.get("BillingMode", "PROVISIONED")
        request["BillingMode"] = billing
        if billing == "PROVISIONED":
            request["ProvisionedThroughput"] = _throughput(props.get("ProvisionedThroughput"))
        if props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = [
                _index(gsi, billing, ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput"))
                for gsi in props["GlobalSecondaryIndexes"]
            ]
        if props.get("LocalSecondaryIndexes"):
            request["LocalSecondaryIndexes"] = [
                _index(lsi, None, ("IndexName", "KeySchema", "Projection")) for lsi in props["LocalSecondaryIndexes"]
            ]
        stream = props.get("StreamSpecification") or {}
        if stream.get("StreamViewType"):
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        try:
            ddb.create_table(**request)
            verb = "created"
        except ClientError as exc:
            if _code(exc) != "ResourceInUseException":
                raise
            verb = "exists"
        description = ddb.describe_table(TableName=name)["Table"]
        if stream.get("StreamViewType") and not description.get("LatestStreamArn"):
            ddb.update_table(TableName=name, StreamSpecification=request["StreamSpecification"])
            description = ddb.describe_table(TableName=name)["Table"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("AttributeName"):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": _bool(ttl.get("Enabled", True)), "AttributeName": ttl["AttributeName"]},
            )
        arn = description["TableArn"]
        stream_arn = description.get("LatestStreamArn")
        attributes = {"Arn": arn}
        if stream_arn:
            attributes["StreamArn"] = stream_arn
        self.resolver.register(logical_id, name, attributes)
        log.info("table %s: %s%s", name, verb, " (stream)" if stream_arn else "")
        return LocalResource(logical_id, "AWS::DynamoDB::Table", name, arn, stream_arn=stream_arn, properties=props)

    def _simple_table(self, logical_id: str, props: dict[str, Any]) -> LocalResource:
        key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        attr_type = {"String": "S", "Number": "N", "Binary": "B"}[key.get("Type", "String")]
        table_props = {
            "TableName": props.get("TableName"),
            "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": attr_type}],
            "BillingMode": "PROVISIONED" if props.get("ProvisionedThroughput") else "PAY_PER_REQUEST",
            "ProvisionedThroughput": props.get("ProvisionedThroughput"),
        }
        return self._table(logical_id, {k: v for k, v in table_props.items() if v is not None})

    def _bucket(self, logical_id: str, props: dict[str, Any]) -> LocalResource:
        s3 = self.clients.s3
        name = props.get("BucketName") or _bucket_name(f"{STACK_NAME}-{logical_id}")
        request: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            s3.create_bucket(**request)
            verb = "created"
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
            verb = "exists"
        versioning = (props.get("VersioningConfiguration") or {}).get("Status")
        if versioning:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
        arn = f"arn:aws:s3:::{name}"
        self.resolver.register(
            logical_id,
            name,
            {
                "Arn": arn,
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com",
                "DualStackDomainName": f"{name}.s3.dualstack.{self.region}.amazonaws.com",
                "WebsiteURL": f"http://{name}.s3-website-{self.region}.amazonaws.com",
            },
        )
        log.info("bucket %s: %s", name, verb)
        return LocalResource(logical_id, "AWS::S3::Bucket", name, arn, properties=props)

    def _queue(self, logical_id: str, props: dict[str, Any]) -> LocalResource:
        sqs = self.clients.sqs
        fifo = _bool(props.get("FifoQueue", False))
        name = props.get("QueueName") or f"{STACK_NAME}-{logical_id}" + (".fifo" if fifo else "")
        attributes: dict[str, str] = {}
        for key in (
            "DelaySeconds",
            "MaximumMessageSize",
            "MessageRetentionPeriod",
            "ReceiveMessageWaitTimeSeconds",
            "VisibilityTimeout",
            "ContentBasedDeduplication",
            "DeduplicationScope",
            "FifoThroughputLimit",
        ):
            if key in props:
                attributes[key] = _attr_string(props[key])
        for key in ("RedrivePolicy", "RedriveAllowPolicy"):
            if key in props:
                value = props[key]
                attributes[key] = value if isinstance(value, str) else json.dumps(value)
        create_attributes = dict(attributes)
        if fifo:
            create_attributes["FifoQueue"] = "true"
        try:
            url = sqs.create_queue(QueueName=name, Attributes=create_attributes)["QueueUrl"]
            verb = "created"
        except ClientError as exc:
            if _code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            if attributes:
                sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
            verb = "exists"
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.resolver.register(logical_id, url, {"Arn": arn, "QueueName": name, "QueueUrl": url})
        log.info("queue %s: %s", name, verb)
        return LocalResource(logical_id, "AWS::SQS::Queue", name, arn, url=url, properties=props)

    def _secret(self, logical_id: str, props: dict[str, Any]) -> LocalResource:
        sm = self.clients.secretsmanager
        name = props.get("Name") or f"{STACK_NAME}-{logical_id}"
        value = props.get("SecretString")
        if value is None:
            value = _generate_secret(props.get("GenerateSecretString") or {})
        request: dict[str, Any] = {"Name": name, "SecretString": value}
        if props.get("Description"):
            request["Description"] = props["Description"]
        try:
            arn = sm.create_secret(**request)["ARN"]
            verb = "created"
        except ClientError as exc:
            if _code(exc) != "ResourceExistsException":
                raise
            arn = sm.describe_secret(SecretId=name)["ARN"]
            verb = "exists"
        self.resolver.register(logical_id, arn, {"Id": arn})
        log.info("secret %s: %s", name, verb)
        return LocalResource(logical_id, "AWS::SecretsManager::Secret", name, arn, properties=props)

    def _parameter(self, logical_id: str, props: dict[str, Any]) -> LocalResource:
        ssm = self.clients.ssm
        name = props.get("Name") or f"{STACK_NAME}-{logical_id}"
        ssm.put_parameter(Name=name, Value=_attr_string(props["Value"]), Type=props.get("Type", "String"), Overwrite=True)
        arn = f"arn:aws:ssm:{self.region}:{ACCOUNT_ID}:parameter/{name.lstrip('/')}"
        self.resolver.register(logical_id, name, {"Type": props.get("Type", "String"), "Value": props["Value"]})
        log.info("parameter %s: put", name)
        return LocalResource(logical_id, "AWS::SSM::Parameter", name, arn, properties=props)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _attr_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _throughput(value: dict[str, Any] | None) -> dict[str, int]:
    value = value or {}
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


def _index(index: dict[str, Any], billing: str | None, keys: tuple[str, ...]) -> dict[str, Any]:
    out = {k: index[k] for k in keys if k in index}
    if billing == "PROVISIONED":
        out["ProvisionedThroughput"] = _throughput(index.get("ProvisionedThroughput"))
    elif billing == "PAY_PER_REQUEST":
        out.pop("ProvisionedThroughput", None)
    return out


def _bucket_name(raw: str) -> str:
    name = re.sub(r"[^a-z0-9.-]", "-", raw.lower()).strip("-.")
    return name[:63]


def _generate_secret(spec: dict[str, Any]) -> str:
    """A local stand-in for Secrets Manager's GenerateSecretString."""
    length = int(spec.get("PasswordLength", 32))
    excluded = set(spec.get("ExcludeCharacters", ""))
    alphabet = ""
    if not _bool(spec.get("ExcludeLowercase", False)):
        alphabet += string.ascii_lowercase
    if not _bool(spec.get("ExcludeUppercase", False)):
        alphabet += string.ascii_uppercase
    if not _bool(spec.get("ExcludeNumbers", False)):
        alphabet += string.digits
    if not _bool(spec.get("ExcludePunctuation", False)):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    if _bool(spec.get("IncludeSpace", False)):
        alphabet += " "
    alphabet = "".join(c for c in alphabet if c not in excluded) or string.ascii_letters
    generated = "".join(secrets.choice(alphabet) for _ in range(length))
    if spec.get("GenerateStringKey"):
        document = json.loads(spec.get("SecretStringTemplate") or "{}")
        document[spec["GenerateStringKey"]] = generated
        return json.dumps(document)
    return generated
