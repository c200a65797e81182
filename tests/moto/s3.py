"""A second S3 client (boto3) for Updraft's remote-log tests: makes buckets and reads objects
on the moto server that serve.py runs, so the tests check what Updraft stored with a client
other than Updraft's own.

Usage: s3.py ENDPOINT CA_FILE create-bucket BUCKET | list BUCKET PREFIX | get BUCKET KEY
`list` prints one key a line; `get` prints the object's bytes.
"""

import sys

import boto3


def main(endpoint, ca_file, command, bucket, rest):
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        verify=ca_file,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    if command == "create-bucket":
        s3.create_bucket(Bucket=bucket)
    elif command == "list":
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=rest[0])
        for page in pages:
            for item in page.get("Contents", []):
                print(item["Key"])
    elif command == "get":
        sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=rest[0])["Body"].read())
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
