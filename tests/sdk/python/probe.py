"""``python probe.py --endpoint URL``: one long-lived boto3 STS client, driven line by line.

The same protocol as ``tests/sdk/rust`` and ``tests/sdk/js``: credentials from boto3's default
chain (configured by the environment the test sets); stdin ``call`` -> one JSON line
``{"ok":true,"arn","account"}`` or ``{"ok":false,"error"}``; EOF ends. A separate process, so
the environment and the credentials cache are those of one application.
"""
import argparse
import json
import sys

import boto3


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    a = p.parse_args()
    sts = boto3.session.Session().client("sts", endpoint_url=a.endpoint)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "call":
            continue
        try:
            r = sts.get_caller_identity()
            out = {"ok": True, "arn": r["Arn"], "account": r["Account"]}
        except Exception as e:  # reported to the test
            out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
