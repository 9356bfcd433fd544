"""The local stack in this process (a background server thread) against tests/local_stack/template.yaml.

One stack serves the whole module: HTTP routes with the Lambda authorizer, and each event source
(S3, SQS with partial batch failure and DLQ, schedule, DynamoDB stream). The test functions record
what they receive in RecorderTable; the tests read it back from the stack's moto.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from local_stack.stack import LocalStack, StackConfig
from tests.local_stack.support import TEMPLATE, aws_client, recorded, wait_for

pytestmark = pytest.mark.xdist_group("local_stack_inprocess")

ADMIN_KEY = "fpadm_inprocess_test_key"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    env_before = dict(os.environ)
    config = StackConfig(template=TEMPLATE, port=0, admin_key=ADMIN_KEY, schedule_scale=0.002)
    with LocalStack(config) as running:
        yield running
    assert dict(os.environ) == env_before, "the stack must restore the environment it changed"


def get(stack: LocalStack, path: str, token: str | None = "allow-reader", **kwargs: object) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[arg-type]
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(f"{stack.base_url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


# --- HTTP API + authorizer --------------------------------------------------------------------------


def test_route_with_authorizer_none_needs_no_token(stack: LocalStack) -> None:
    response = get(stack, "/health", token=None)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_missing_authorization_header_is_401_without_calling_the_authorizer(stack: LocalStack) -> None:
    calls_before = len(recorded(stack.endpoint_url, "authorizer"))
    response = get(stack, "/v1/ws-1/echo/x", token=None)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    assert len(recorded(stack.endpoint_url, "authorizer")) == calls_before


def test_denied_token_is_403(stack: LocalStack) -> None:
    calls_before = len(recorded(stack.endpoint_url, "authorizer"))
    response = get(stack, "/v1/ws-1/echo/x", token="wrong-key")
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}
    assert len(recorded(stack.endpoint_url, "authorizer")) == calls_before + 1


def test_authorizer_error_is_500(stack: LocalStack) -> None:
    response = get(stack, "/v1/ws-1/echo/x", token="boom")
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_allowed_request_reaches_the_function_with_a_payload_2_event(stack: LocalStack) -> None:
    response = get(
        stack,
        "/v1/ws-42/echo/a/b%20c?x=1&x=2&empty=",
        token="allow-reader",
        headers={"X-Custom": "v1", "Cookie": "session=abc; theme=dark"},
    )
    assert response.status_code == 200, response.text
    echoed = response.json()
    event, context, env = echoed["event"], echoed["context"], echoed["env"]

    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /v1/{workspace_id}/echo/{proxy+}"
    assert event["rawPath"] == "/v1/ws-42/echo/a/b c"
    assert event["rawQueryString"] == "x=1&x=2&empty="
    assert event["pathParameters"] == {"workspace_id": "ws-42", "proxy": "a/b c"}
    assert event["queryStringParameters"] == {"x": "1,2", "empty": ""}
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert event["headers"]["x-custom"] == "v1"
    assert event["headers"]["authorization"] == "Bearer allow-reader"
    assert "cookie" not in event["headers"]
    assert event["isBase64Encoded"] is False and "body" not in event

    request_context = event["requestContext"]
    assert request_context["routeKey"] == event["routeKey"]
    assert request_context["stage"] == "$default"
    assert request_context["http"]["method"] == "GET"
    assert request_context["http"]["path"] == "/v1/ws-42/echo/a/b c"
    assert request_context["accountId"] == "123456789012"
    assert isinstance(request_context["timeEpoch"], int)
    authorizer_context = request_context["authorizer"]["lambda"]
    assert authorizer_context["principal"] == "allow-reader"
    assert authorizer_context["event_type"] == "REQUEST"
    assert authorizer_context["route_arn"].endswith("/$default/GET/v1/ws-42/echo/a/b c")

    assert context["function_name"] == "fhir-platform-local-EchoFunction"
    assert context["memory_limit_in_mb"] == 512
    assert context["invoked_function_arn"].endswith(":function:fhir-platform-local-EchoFunction")
    assert 0 < context["remaining_ms"] <= 10_000
    assert echoed["module"] == "local_stack.functions.EchoFunction.app"

    # intrinsics resolved to the local physical names, union of all functions' variables
    assert env["STAGE"] == "test"
    assert env["RECORDER_TABLE"] == "fhir-platform-local-RecorderTable"
    assert env["ECHO_QUEUE_URL"].startswith(stack.endpoint_url) and env["ECHO_QUEUE_URL"].endswith("/fhir-platform-local-WorkQueue")
    assert env["ECHO_STREAM_ARN"].startswith("arn:aws:dynamodb:us-east-1:123456789012:table/fhir-platform-local-stream-source/stream/")
    assert env["ECHO_BUCKET"] == "fhir-platform-local-uploadbucket|arn:aws:s3:::fhir-platform-local-uploadbucket"
    assert env["ADMIN_KEY_SECRET_ARN"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:fhir-platform-local/admin-key")

    assert response.headers["x-echo"] == "yes"
    assert response.raw.headers.getlist("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.headers["apigw-requestid"] == request_context["requestId"]


def test_static_route_wins_over_path_variables(stack: LocalStack) -> None:
    response = get(stack, "/v1/static/echo/fixed")
    assert response.json()["event"]["routeKey"] == "GET /v1/static/echo/fixed"


def test_bodies_text_and_binary(stack: LocalStack) -> None:
    headers = {"Authorization": "Bearer allow-writer"}
    as_json = requests.post(f"{stack.base_url}/v1/ws-1/echo", json={"a": 1}, headers=headers, timeout=30).json()["event"]
    assert as_json["isBase64Encoded"] is False
    assert json.loads(as_json["body"]) == {"a": 1}

    payload = bytes(range(256))
    binary = requests.post(
        f"{stack.base_url}/v1/ws-1/echo",
        data=payload,
        headers={**headers, "Content-Type": "application/octet-stream"},
        timeout=30,
    ).json()["event"]
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == payload


def test_unknown_route_handler_error_and_oversized_body(stack: LocalStack) -> None:
    assert get(stack, "/v1/nothing/here/at/all/x").status_code == 404
    assert get(stack, "/v1/nothing/here/at/all/x").json() == {"message": "Not Found"}
    assert requests.delete(f"{stack.base_url}/health", timeout=30).status_code == 404  # method not routed

    exploded = get(stack, "/v1/explode")
    assert exploded.status_code == 500
    assert exploded.json() == {"message": "Internal Server Error"}

    too_big = requests.post(
        f"{stack.base_url}/v1/ws-1/echo",
        data=b"x" * (10 * 1024 * 1024 + 1),
        headers={"Authorization": "Bearer allow-writer", "Content-Type": "text/plain"},
        timeout=60,
    )
    assert too_big.status_code == 413


def test_keep_alive_connections_and_request_framing(stack: LocalStack) -> None:
    """Requests share one HTTP/1.1 connection; a request whose body length cannot be known is
    answered 400 and its connection closed (never left half-read for the next request to trip on)."""
    host, port = stack.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        for _ in range(3):
            connection.request("GET", "/health")
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read()) == {"status": "ok"}
            assert response.getheader("content-length") == str(len('{"status": "ok"}'))
            assert response.getheader("connection") is None  # kept alive
        connection.putrequest("POST", "/v1/ws-1/echo")
        connection.putheader("Authorization", "Bearer allow-writer")
        connection.putheader("Content-Length", "twelve")
        connection.endheaders()
        connection.send(b"twelve bytes")
        bad = connection.getresponse()
        assert bad.status == 400
        assert "Content-Length" in json.loads(bad.read())["message"]
        assert bad.getheader("connection") == "close"
    finally:
        connection.close()


def test_admin_key_stored_in_secrets_manager_and_demo_workspace_created(stack: LocalStack) -> None:
    secrets = aws_client("secretsmanager", stack.endpoint_url)
    assert secrets.get_secret_value(SecretId="fhir-platform-local/admin-key")["SecretString"] == ADMIN_KEY
    assert stack.demo_error is None
    assert stack.workspace_id and stack.workspace_id.startswith("ws_")
    assert stack.api_key and stack.api_key.startswith("fpk_")
    response = get(stack, f"/v1/{stack.workspace_id}/echo/check", token=stack.api_key)
    assert response.status_code == 200


# --- event sources ------------------------------------------------------------------------------------


def test_s3_object_created_is_delivered_with_an_s3_event(stack: LocalStack) -> None:
    s3 = aws_client("s3", stack.endpoint_url)
    bucket = "fhir-platform-local-uploadbucket"
    marker = uuid.uuid4().hex[:8]
    s3.put_object(Bucket=bucket, Key=f"other/{marker}.json", Body=b"{}")  # prefix does not match
    s3.put_object(Bucket=bucket, Key=f"incoming/{marker}.txt", Body=b"{}")  # suffix does not match
    key = f"incoming/bundle {marker}=1.json"
    s3.put_object(Bucket=bucket, Key=key, Body=b'{"resourceType": "Bundle"}')

    items = wait_for(lambda: [i for i in recorded(stack.endpoint_url, "s3") if marker in i["SK"]], what="the S3 event")
    assert [i["SK"] for i in items] == [key]
    item = items[0]
    assert item["raw_key"] == f"incoming/bundle+{marker}%3D1.json"
    assert item["event_name"] == "ObjectCreated:Put"
    assert item["event_source"] == "aws:s3"
    assert item["bucket"] == bucket and item["bucket_arn"] == f"arn:aws:s3:::{bucket}"
    assert int(item["size"]) == len(b'{"resourceType": "Bundle"}')
    assert item["etag"] == s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')


def test_sqs_partial_batch_failure_redelivery_and_dead_letter_queue(stack: LocalStack) -> None:
    sqs = aws_client("sqs", stack.endpoint_url)
    queue_url = sqs.get_queue_url(QueueName="fhir-platform-local-WorkQueue")["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName="fhir-platform-local-work-dlq")["QueueUrl"]
    run = uuid.uuid4().hex[:8]
    ids = {mode: f"{run}-{mode}" for mode in ("ok", "fail_once", "always_fail")}
    sqs.send_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {
                "Id": mode,
                "MessageBody": json.dumps({"id": ids[mode], "mode": mode}),
                "MessageAttributes": {"kind": {"DataType": "String", "StringValue": mode}},
            }
            for mode in ids
        ],
    )

    retried = wait_for(lambda: len(recorded(stack.endpoint_url, f"sqs#{ids['fail_once']}")) >= 2, what="a redelivery")
    assert retried
    delivered_ok = recorded(stack.endpoint_url, f"sqs#{ids['ok']}")
    assert len(delivered_ok) == 1, "a message not reported as failed must be deleted, not redelivered"
    assert delivered_ok[0]["attribute"] == "ok"
    assert delivered_ok[0]["event_source"] == "aws:sqs"
    assert delivered_ok[0]["event_source_arn"].endswith(":fhir-platform-local-WorkQueue")

    def dead_lettered() -> list[dict[str, object]]:
        return sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])

    messages = wait_for(dead_lettered, timeout=20, what="the always-failing message in the DLQ")
    assert [json.loads(m["Body"])["id"] for m in messages] == [ids["always_fail"]]
    assert len(recorded(stack.endpoint_url, f"sqs#{ids['always_fail']}")) == 2  # maxReceiveCount
    assert len(recorded(stack.endpoint_url, f"sqs#{ids['fail_once']}")) == 2


def test_schedule_fires_with_a_scheduled_event_and_can_be_triggered(stack: LocalStack) -> None:
    first = wait_for(lambda: recorded(stack.endpoint_url, "tick"), what="a scheduled invocation")
    assert first[0]["detail_type"] == "Scheduled Event"
    assert first[0]["source"] == "aws.events"
    assert first[0]["resources"] == [
        "arn:aws:events:us-east-1:123456789012:rule/fhir-platform-local-TickFunctionEvery5Minutes"
    ]

    before = len(recorded(stack.endpoint_url, "tick"))
    triggered = requests.post(f"{stack.base_url}/_local/schedules/TickFunction", timeout=30)
    assert triggered.status_code == 200
    assert triggered.json() == {"invoked": ["TickFunction.Every5Minutes"]}
    assert len(recorded(stack.endpoint_url, "tick")) > before
    assert requests.post(f"{stack.base_url}/_local/schedules/NoSuchFunction", timeout=30).status_code == 404


def test_dynamodb_stream_records_with_retry_from_the_failed_record(stack: LocalStack) -> None:
    ddb = aws_client("dynamodb", stack.endpoint_url)
    table = "fhir-platform-local-stream-source"
    run = uuid.uuid4().hex[:8]
    plain, flaky = f"{run}-plain", f"{run}-flaky"
    ddb.put_item(TableName=table, Item={"pk": {"S": plain}, "v": {"N": "1"}})
    ddb.put_item(TableName=table, Item={"pk": {"S": flaky}, "fail_once": {"BOOL": True}})
    ddb.update_item(
        TableName=table,
        Key={"pk": {"S": plain}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"N": "2"}},
    )
    ddb.delete_item(TableName=table, Key={"pk": {"S": plain}})

    events = wait_for(
        lambda: {i["event_name"] for i in recorded(stack.endpoint_url, f"stream#{plain}")} == {"INSERT", "MODIFY", "REMOVE"}
        and recorded(stack.endpoint_url, f"stream#{plain}"),
        what="INSERT, MODIFY and REMOVE of the plain item",
    )
    by_name = {i["event_name"]: i for i in events}
    assert by_name["INSERT"]["has_new"] and not by_name["INSERT"]["has_old"]
    assert by_name["MODIFY"]["has_new"] and by_name["MODIFY"]["has_old"]
    assert by_name["REMOVE"]["has_old"] and not by_name["REMOVE"]["has_new"]
    assert by_name["INSERT"]["event_source_arn"].startswith(f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/")

    flaky_deliveries = wait_for(lambda: len(recorded(stack.endpoint_url, f"stream#{flaky}")) >= 2, what="the retry")
    assert flaky_deliveries
    assert len(recorded(stack.endpoint_url, f"stream#{flaky}")) == 2
    # the record before the failed one was not retried; the ones after it were (Lambda retries from
    # the failed sequence number), so the plain item's MODIFY/REMOVE may have been seen twice
    inserts = [i for i in recorded(stack.endpoint_url, f"stream#{plain}") if i["event_name"] == "INSERT"]
    assert len(inserts) == 1


def test_a_stream_record_failing_past_its_retries_goes_to_the_on_failure_queue(stack: LocalStack) -> None:
    ddb = aws_client("dynamodb", stack.endpoint_url)
    sqs = aws_client("sqs", stack.endpoint_url)
    table = "fhir-platform-local-stream-source"
    url = next(u for u in sqs.list_queues()["QueueUrls"] if u.endswith("StreamFailureQueue"))
    doomed = f"{uuid.uuid4().hex[:8]}-doomed"
    ddb.put_item(TableName=table, Item={"pk": {"S": doomed}, "fail_always": {"BOOL": True}})

    def on_failure() -> list[dict]:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        return [json.loads(m["Body"]) for m in got]

    (message,) = wait_for(on_failure, what="the on-failure record")
    info = message["DDBStreamBatchInfo"]
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert info["streamArn"].startswith(f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/")
    assert info["batchSize"] >= 1 and int(info["startSequenceNumber"]) <= int(info["endSequenceNumber"])
    deliveries = recorded(stack.endpoint_url, f"stream#{doomed}")
    assert len(deliveries) == 3  # the first delivery and MaximumRetryAttempts (2) retries


# --- execution environments -------------------------------------------------------------------------


def _slow(stack: LocalStack, gate: str) -> requests.Response:
    return requests.get(f"{stack.base_url}/v1/slow/{gate}", timeout=60)


def _open_gate(stack: LocalStack, gate: str) -> None:
    aws_client("dynamodb", stack.endpoint_url).put_item(
        TableName="fhir-platform-local-RecorderTable", Item={"PK": {"S": "gate"}, "SK": {"S": gate}}
    )


def test_a_running_invocation_does_not_block_other_functions(stack: LocalStack) -> None:
    gate = uuid.uuid4().hex
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(_slow, stack, gate)
        try:
            wait_for(lambda: recorded(stack.endpoint_url, f"slow#{gate}"), what="the slow invocation to start")
            other = get(stack, "/v1/ws-1/echo/while-slow-runs")  # the authorizer, then EchoFunction
            assert other.status_code == 200, other.text
            assert not slow.done(), "the slow invocation should still be waiting for its gate"
        finally:
            _open_gate(stack, gate)
        response = slow.result(timeout=60)
    assert response.status_code == 200
    assert response.json()["opened"] is True


def test_concurrent_invocations_run_in_separate_environments_up_to_the_reserved_concurrency(stack: LocalStack) -> None:
    gate = uuid.uuid4().hex
    with ThreadPoolExecutor(max_workers=3) as pool:
        calls = [pool.submit(_slow, stack, gate) for _ in range(3)]
        try:
            # two run at once (ReservedConcurrentExecutions: 2), in two environments; the third queues
            def two_running() -> list[dict[str, object]] | None:
                items = recorded(stack.endpoint_url, f"slow#{gate}")
                return items if len(items) >= 2 else None

            started = wait_for(two_running, what="two invocations running at once")
            entered = {item["environment"] for item in started}
            assert len(started) == 2 and len(entered) == 2
        finally:
            _open_gate(stack, gate)
        results = [call.result(timeout=60).json() for call in calls]
    assert all(r["opened"] for r in results)
    assert not any(r["overlapped"] for r in results), "two invocations interleaved inside one environment"
    environments = {r["environment"] for r in results}
    assert environments == entered  # the queued third one ran in one of the two, after it was free
    assert len({r["pid"] for r in results}) == 2  # one process per environment
    assert len(stack.functions["SlowFunction"].pool.environment_ids()) == 2


def test_past_the_concurrency_and_the_integration_timeout_the_gateway_answers_503_with_retry_after(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a client meets when a function's concurrency is exhausted (Lambda throttles; API Gateway
    answers 503): a clean 503 with ``Retry-After``, so it knows to come back (issue 13). The 30 s
    integration wait is shortened here; the platform's own code answers no 429 at all."""
    from local_stack import http_gateway

    monkeypatch.setattr(http_gateway, "INTEGRATION_TIMEOUT_SECONDS", 1)
    gate = uuid.uuid4().hex
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = [pool.submit(_slow, stack, gate) for _ in range(2)]  # both environments (reserved 2)
        try:
            wait_for(lambda: len(recorded(stack.endpoint_url, f"slow#{gate}")) >= 2 or None, what="two invocations running")
            third = _slow(stack, gate)
        finally:
            _open_gate(stack, gate)
        assert all(call.result(timeout=60).status_code == 200 for call in running)
    assert third.status_code == 503 and third.json() == {"message": "Service Unavailable"}
    assert third.headers["Retry-After"] == "1"
