"""Stand-in for the platform's workspace and API-key endpoints (used by the demo bootstrap)."""

import json
import uuid


def handler(event, context):
    if event["requestContext"]["authorizer"]["lambda"]["role"] != "admin":
        return {"statusCode": 403, "body": json.dumps({"message": "admin only"})}
    body = json.loads(event["body"])
    if event["routeKey"] == "POST /v1/workspaces":
        assert body["name"] == "Demo Clinic" and body["slug"].startswith("demo-")
        return {"statusCode": 201, "body": json.dumps({"id": "ws_" + uuid.uuid4().hex[:12], "name": body["name"]})}
    assert body == {"name": "demo", "duration_days": 90, "role": "admin"}
    return {"statusCode": 201, "body": json.dumps({"api_key": "fpk_" + uuid.uuid4().hex, "role": body["role"]})}
