#!/usr/bin/env python3
"""s3ctl: what test_image_store.sh asks of the moto S3-API server, through boto3 (the reference
client; the farm under test speaks to the same server through its own SigV4 signer).

  s3ctl.py setup ENDPOINT BUCKET        make an IAM user with an access key allowed s3:*, then the
                                        bucket with that key; prints "ACCESS_KEY SECRET_KEY".
                                        moto runs with INITIAL_NO_AUTH_ACTION_COUNT=3: these three
                                        IAM calls are the only unsigned ones, every later request is
                                        checked (signature and policy), the farm's included.
  s3ctl.py ls ENDPOINT AK SK BUCKET PREFIX     one "name size" line per object under PREFIX
                                               (the name without the prefix)
  s3ctl.py get ENDPOINT AK SK BUCKET KEY FILE  the object's bytes into FILE
"""
import sys

import boto3


def client(service, endpoint, ak="testing", sk="testing"):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=ak, aws_secret_access_key=sk)


def main(argv):
    cmd, endpoint = argv[1], argv[2]
    if cmd == "setup":
        iam = client("iam", endpoint)
        iam.create_user(UserName="lightfarm")
        key = iam.create_access_key(UserName="lightfarm")["AccessKey"]
        iam.put_user_policy(UserName="lightfarm", PolicyName="s3", PolicyDocument=(
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'))
        ak, sk = key["AccessKeyId"], key["SecretAccessKey"]
        client("s3", endpoint, ak, sk).create_bucket(Bucket=argv[3])
        print(ak, sk)
    elif cmd == "ls":
        s3 = client("s3", endpoint, argv[3], argv[4])
        # The whole bucket, filtered here: moto 5.0.28 rejects the signature of a list request whose
        # prefix holds an encoded '/', botocore's own included (moto's canonical query, not ours).
        r = s3.list_objects_v2(Bucket=argv[5])
        for o in r.get("Contents", []):
            if o["Key"].startswith(argv[6]):
                print(o["Key"][len(argv[6]):], o["Size"])
    elif cmd == "get":
        s3 = client("s3", endpoint, argv[3], argv[4])
        with open(argv[7], "wb") as f:
            f.write(s3.get_object(Bucket=argv[5], Key=argv[6])["Body"].read())
    else:
        sys.exit(f"s3ctl: unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
