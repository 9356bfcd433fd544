"""Records every delivery; ``fail_once`` fails on the first receive, ``always_fail`` always."""

import json
import os

import boto3

table = boto3.resource("dynamodb").Table(os.environ["RECORDER_TABLE"])


def handler(event, context):
    failures = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        count = record["attributes"]["ApproximateReceiveCount"]
        table.put_item(
            Item={
                "PK": f"sqs#{body['id']}",
                "SK": f"{record['messageId']}#{count}",
                "event_source": record["eventSource"],
                "event_source_arn": record["eventSourceARN"],
                "attribute": record["messageAttributes"].get("kind", {}).get("stringValue", ""),
                "batch_size": len(event["Records"]),
            }
        )
        if body["mode"] == "always_fail" or (body["mode"] == "fail_once" and count == "1"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
