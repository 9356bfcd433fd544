"""Runs until its gate opens (at most 20 s), recording which execution environment runs it and
whether another invocation was already running in that environment (it never should be)."""

import json
import os
import time
import uuid

import boto3

ENVIRONMENT = uuid.uuid4().hex  # module state: one value per execution environment
table = boto3.resource("dynamodb").Table(os.environ["RECORDER_TABLE"])
running = 0


def handler(event, context):
    global running
    running += 1
    overlapped = running > 1
    try:
        gate = event["pathParameters"]["gate"]
        table.put_item(Item={"PK": f"slow#{gate}", "SK": context.aws_request_id, "environment": ENVIRONMENT})
        opened = False
        deadline = time.monotonic() + 20
        while not opened and time.monotonic() < deadline:
            opened = "Item" in table.get_item(Key={"PK": "gate", "SK": gate}, ConsistentRead=True)
            if not opened:
                time.sleep(0.05)
        body = {"environment": ENVIRONMENT, "overlapped": overlapped, "opened": opened, "pid": os.getpid()}
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
    finally:
        running -= 1
