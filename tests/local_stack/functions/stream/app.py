"""Records stream records; an item with ``fail_once`` is reported as failed the first time, one
with ``fail_always`` every time."""

import os

import boto3

table = boto3.resource("dynamodb").Table(os.environ["RECORDER_TABLE"])
failed_once: set[str] = set()


def handler(event, context):
    failures = []
    for record in event["Records"]:
        pk = record["dynamodb"]["Keys"]["pk"]["S"]
        sequence = record["dynamodb"]["SequenceNumber"]
        table.put_item(
            Item={
                "PK": f"stream#{pk}",
                "SK": f"{record['eventName']}#{sequence}#{context.aws_request_id}",
                "event_name": record["eventName"],
                "has_new": "NewImage" in record["dynamodb"],
                "has_old": "OldImage" in record["dynamodb"],
                "event_source_arn": record["eventSourceARN"],
            }
        )
        new_image = record["dynamodb"].get("NewImage", {})
        if "fail_always" in new_image:
            failures.append({"itemIdentifier": sequence})
        elif "fail_once" in new_image and sequence not in failed_once:
            failed_once.add(sequence)
            failures.append({"itemIdentifier": sequence})
    return {"batchItemFailures": failures}
