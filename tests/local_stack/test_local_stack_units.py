"""The local stack's pure pieces: template intrinsics, shared environment, routing, cron, filters."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from local_stack.events.filters import record_matches, sqs_filter_view
from local_stack.events.schedule import Cron
from local_stack.http_gateway import HttpGateway, Route, _to_response
from local_stack.lambda_runtime import FunctionSpec, runtime_environment
from local_stack.template import TemplateError, Unresolved, load_template, sam_merge


def _template(tmp_path: Path, body: str, **overrides: str) -> Any:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(body))
    return load_template(path, overrides, region="eu-west-1")


def test_short_form_intrinsics_resolve_to_local_values(tmp_path: Path) -> None:
    template, resolver = _template(
        tmp_path,
        """
        Parameters:
          Env: {Type: String, Default: dev}
          Zones: {Type: CommaDelimitedList, Default: "a,b"}
        Conditions:
          IsProd: !Equals [!Ref Env, prod]
        Resources:
          Queue:
            Type: AWS::SQS::Queue
          ProdOnly:
            Type: AWS::SQS::Queue
            Condition: IsProd
        """,
    )
    assert "ProdOnly" not in template.all_resources
    resolver.register("Queue", "http://local/queue", {"Arn": "arn:aws:sqs:eu-west-1:123456789012:q"})
    value = {
        "ref": {"Ref": "Queue"},
        "arn": {"Fn::GetAtt": ["Queue", "Arn"]},
        "sub": {"Fn::Sub": "${AWS::StackName}-${Env}-${Queue.Arn}-${!Literal}-${AWS::Region}"},
        "sub_vars": {"Fn::Sub": ["${A}/${Env}", {"A": {"Ref": "AWS::AccountId"}}]},
        "join": {"Fn::Join": ["-", [{"Ref": "Env"}, "x", 3]]},
        "select": {"Fn::Select": [1, {"Ref": "Zones"}]},
        "if": {"Fn::If": ["IsProd", "big", "small"]},
        "gone": {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]},
        "list": ["keep", {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]}],
    }
    assert resolver.resolve(value) == {
        "ref": "http://local/queue",
        "arn": "arn:aws:sqs:eu-west-1:123456789012:q",
        "sub": "fhir-platform-local-dev-arn:aws:sqs:eu-west-1:123456789012:q-${Literal}-eu-west-1",
        "sub_vars": "123456789012/dev",
        "join": "dev-x-3",
        "select": "b",
        "if": "small",
        "list": ["keep"],
    }


def test_yaml_tags_and_unresolved_references(tmp_path: Path) -> None:
    template, resolver = _template(
        tmp_path,
        """
        Resources:
          Table:
            Type: AWS::DynamoDB::Table
            Properties:
              TableName: !Sub "${AWS::StackName}-data"
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Environment:
                Variables:
                  ARN: !GetAtt Table.StreamArn
                  NAME: !Ref Table
        """,
    )
    variables = template.all_resources["Fn"]["Properties"]["Environment"]["Variables"]
    assert variables == {"ARN": {"Fn::GetAtt": ["Table", "StreamArn"]}, "NAME": {"Ref": "Table"}}
    with pytest.raises(Unresolved):
        resolver.resolve(variables)
    with pytest.raises(TemplateError):
        resolver.resolve({"Ref": "NoSuchThing"})


def test_parameter_overrides_and_missing_defaults(tmp_path: Path) -> None:
    body = """
        Parameters:
          Level: {Type: String, Default: INFO}
        Resources: {}
        """
    _, resolver = _template(tmp_path, body, Level="DEBUG")
    assert resolver.resolve({"Ref": "Level"}) == "DEBUG"
    with pytest.raises(TemplateError, match="unknown template parameter"):
        _template(tmp_path, body, Nope="1")


def test_globals_merge_like_sam() -> None:
    merged = sam_merge(
        {"Timeout": 3, "Layers": ["a"], "Environment": {"Variables": {"A": "1", "B": "1"}}},
        {"Timeout": 9, "Layers": ["b"], "Environment": {"Variables": {"B": "2"}}},
    )
    assert merged == {"Timeout": 9, "Layers": ["a", "b"], "Environment": {"Variables": {"A": "1", "B": "2"}}}


def _spec(logical_id: str, env: dict[str, str]) -> FunctionSpec:
    return FunctionSpec(logical_id, logical_id, f"arn:{logical_id}", Path("."), "app.handler", 3, 128, env)


def test_shared_environment_is_the_union_and_conflicts_are_errors() -> None:
    env = runtime_environment(
        [_spec("A", {"TABLE": "t", "ONLY_A": "1"}), _spec("B", {"TABLE": "t"})],
        "http://127.0.0.1:1",
        "us-east-1",
        {"HOME": "/root", "AWS_PROFILE": "prod", "AWS_ENDPOINT_URL_S3": "https://s3.amazonaws.com"},
    )
    assert env["TABLE"] == "t" and env["ONLY_A"] == "1" and env["HOME"] == "/root"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1" and env["AWS_ACCESS_KEY_ID"] == "testing"
    assert "AWS_PROFILE" not in env and "AWS_ENDPOINT_URL_S3" not in env
    with pytest.raises(TemplateError, match="TABLE: A='t' but B='u'"):
        runtime_environment([_spec("A", {"TABLE": "t"}), _spec("B", {"TABLE": "u"})], "http://x", "us-east-1", {})
    with pytest.raises(TemplateError, match="reserved"):
        runtime_environment([_spec("A", {"AWS_REGION": "eu-west-1"})], "http://x", "us-east-1", {})


def test_routes_match_like_api_gateway() -> None:
    def route(method: str, path: str) -> Route:
        return Route("api", method, path, function=None, authorizer=None, stage="$default", cors=None)  # type: ignore[arg-type]

    gateway = HttpGateway(
        [
            route("ANY", "/v1/{proxy+}"),
            route("GET", "/v1/{ws}/fhir/resources/{type}/{id}"),
            route("GET", "/v1/{ws}/fhir/resources/{type}/{id}/history"),
            route("GET", "/v1/workspaces/{id}"),
            route("GET", "/v1/{ws}/api-keys/permission-catalog"),
            route("GET", "/v1/{ws}/api-keys/{key}"),
            route("GET", "/v1/{ws}/status"),
            route("ANY", "/v1/static/{proxy+}"),
        ],
        "us-east-1",
    )

    def key(method: str, path: str) -> tuple[str, dict[str, str]] | None:
        found = gateway.match(method, path)
        return (found[0].route_key, found[1]) if found else None

    assert key("GET", "/v1/w1/fhir/resources/Patient/p1") == (
        "GET /v1/{ws}/fhir/resources/{type}/{id}",
        {"ws": "w1", "type": "Patient", "id": "p1"},
    )
    assert key("GET", "/v1/w1/fhir/resources/Patient/p1/history")[0].endswith("/history")  # type: ignore[index]
    assert key("GET", "/v1/workspaces/w1")[0] == "GET /v1/workspaces/{id}"  # type: ignore[index]
    assert key("GET", "/v1/w1/api-keys/permission-catalog")[0] == "GET /v1/{ws}/api-keys/permission-catalog"  # type: ignore[index]
    assert key("POST", "/v1/w1/fhir/resources/Patient") == ("ANY /v1/{proxy+}", {"proxy": "w1/fhir/resources/Patient"})
    assert key("GET", "/v1/workspaces/status")[0] == "GET /v1/workspaces/{id}"  # type: ignore[index]
    assert key("GET", "/v1/w1/status")[0] == "GET /v1/{ws}/status"  # type: ignore[index]
    assert key("GET", "/v1/static/a/b")[0] == "ANY /v1/static/{proxy+}"  # type: ignore[index]
    assert key("GET", "/health") is None
    with pytest.raises(TemplateError):
        route("GET", "/v1/{proxy+}/tail")


def test_lambda_results_become_http_responses() -> None:
    bare = _to_response({"id": 1}, "F")
    assert (bare.status, bare.body, bare.headers) == (200, b'{"id": 1}', [("content-type", "application/json")])
    full = _to_response(
        {"statusCode": 201, "headers": {"x": "1"}, "multiValueHeaders": {"y": ["a", "b"]}, "cookies": ["c=1"], "body": "aGk=", "isBase64Encoded": True},
        "F",
    )
    assert (full.status, full.body) == (201, b"hi")
    assert full.headers == [("x", "1"), ("y", "a"), ("y", "b"), ("set-cookie", "c=1")]
    assert _to_response({"statusCode": "nope"}, "F").status == 500
    assert _to_response({"statusCode": 200, "body": {"not": "a string"}}, "F").status == 500


def test_cron_expressions() -> None:
    every_15 = Cron("0/15 * * * ? *")
    assert every_15.next_after(datetime(2025, 1, 1, 10, 7, 30, tzinfo=timezone.utc)) == datetime(2025, 1, 1, 10, 15, tzinfo=timezone.utc)
    weekdays_at_8 = Cron("0 8 ? * MON-FRI *")
    saturday = datetime(2025, 1, 4, 9, 0, tzinfo=timezone.utc)
    assert weekdays_at_8.next_after(saturday) == datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)  # Monday
    with pytest.raises(TemplateError):
        Cron("0 8 L * ? *")


def test_event_filter_patterns() -> None:
    record = {"eventName": "MODIFY", "dynamodb": {"NewImage": {"SK": {"S": "CURRENT"}, "source": {"S": "api"}}}}
    assert record_matches([], record)
    assert record_matches([{"eventName": ["INSERT", "MODIFY"]}], record)
    assert not record_matches([{"eventName": ["REMOVE"]}], record)
    assert record_matches([{"dynamodb": {"NewImage": {"SK": {"S": [{"prefix": "CUR"}]}}}}], record)
    assert record_matches([{"dynamodb": {"NewImage": {"source": {"S": [{"anything-but": ["ehr"]}]}}}}], record)
    assert not record_matches([{"dynamodb": {"OldImage": {"SK": {"S": [{"exists": True}]}}}}], record)
    sqs = sqs_filter_view({"body": '{"kind": "bundle", "size": 12}'})
    assert record_matches([{"body": {"kind": ["bundle"], "size": [{"numeric": [">", 10, "<=", 12]}]}}], sqs)
    assert not record_matches([{"body": {"size": [{"numeric": [">", 12]}]}}], sqs)


def test_stream_bisect_on_function_error_then_on_failure_record() -> None:
    """A function error on a batch halves it (not a retry) down to one record; that record's
    retries are counted and, once exhausted, Lambda's on-failure record goes to the queue."""
    import json
    import threading
    from types import SimpleNamespace

    from local_stack.events.streams import StreamPoller, _Shard
    from local_stack.lambda_runtime import FunctionError

    delivered: list[list[str]] = []
    sent: list[dict[str, Any]] = []

    class Function:
        logical_id = "Outbound"
        spec = SimpleNamespace(arn="arn:aws:lambda:us-east-1:123456789012:function:outbound")

        def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
            seqs = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
            delivered.append(seqs)
            if "3" in seqs:
                raise FunctionError("boom")
            return {"batchItemFailures": []}

    class Streams:
        def get_shard_iterator(self, **kw: Any) -> dict[str, str]:
            return {"ShardIterator": f"at:{kw.get('SequenceNumber')}"}

    class Sqs:
        def send_message(self, QueueUrl: str, MessageBody: str) -> None:  # noqa: N803 - boto3's names
            sent.append(json.loads(MessageBody))

    table = SimpleNamespace(name="t", stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x")
    poller = StreamPoller(
        Function(), "Changes", table, "LATEST", batch_size=4, report_failures=True, max_retries=2, filters=[],
        streams=Streams(), region="us-east-1", stop=threading.Event(), bisect=True, on_failure=(Sqs(), "queue-url"),
    )
    poller.stop.set()  # no waits between retries
    shard = _Shard("shard-1", "start")

    def records(*seqs: str) -> list[dict[str, Any]]:
        return [{"dynamodb": {"SequenceNumber": s, "ApproximateCreationDateTime": 1_700_000_000}} for s in seqs]

    poller._deliver(shard, records("1", "2", "3", "4"), "next")
    assert shard.limit == 2 and shard.iterator == "at:1" and shard.attempts == 0  # bisected, not counted
    poller._deliver(shard, records("1", "2"), "after-2")
    assert shard.limit is None and shard.iterator == "after-2"
    poller._deliver(shard, records("3", "4"), "after-4")
    assert shard.limit == 1 and shard.iterator == "at:3"
    for attempt in (1, 2):
        poller._deliver(shard, records("3"), "after-3")
        assert shard.attempts == attempt and shard.iterator == "at:3"
    assert not sent
    poller._deliver(shard, records("3"), "after-3")
    assert shard.iterator == "after-3" and shard.attempts == 0
    (message,) = sent
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    info = message["DDBStreamBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == ("shard-1", "3", "3", 1)
    assert info["streamArn"] == table.stream_arn
    assert delivered == [["1", "2", "3", "4"], ["1", "2"], ["3", "4"], ["3"], ["3"], ["3"]]
