#!/usr/bin/env python3
"""Writes tests/common/fixtures/sigv4_vectors.txt: AWS SigV4 signatures made by botocore's signer.

botocore (the signer of the AWS CLI and boto3) signs a few requests like the ones lf_blobstore's S3
backend sends: S3 GET with a Range (the example of AWS's S3 SigV4 documentation), PUT of bytes under a
key with blanks and UTF-8 on a path-style endpoint with a port (MinIO / moto), DELETE, HEAD of a
bucket, a ListObjectsV2 query, and AWS's SigV4 test-suite request "get-vanilla" (service "service").
The clock is fixed. For each request the file gives what lf_sigv4 takes and botocore's canonical
request, string to sign and Authorization header; test_common_sigv4 recomputes all three.

botocore comes with moto in the deploy test venv (tests/deploy/requirements-s3.txt, pinned):
    bash -c '. tests/deploy/venv.sh && "$(deploy_venv s3)/python" tests/reference/make_sigv4_vectors.py'

Format: records separated by a line "%%"; each line "field<TAB>value" with \\n and \\\\ escaped in the
value; a "header" line repeats ("name<TAB>value").
"""
import datetime
import hashlib
import os
from unittest import mock

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "common", "fixtures", "sigv4_vectors.txt")

DOC_KEYS = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
SUITE_KEYS = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

CASES = [
    # name, keys, region, service, when, method, url, headers, body, s3 signer
    ("get-vanilla", SUITE_KEYS, "us-east-1", "service", datetime.datetime(2015, 8, 30, 12, 36, 0),
     "GET", "https://example.amazonaws.com/", {}, b"", False),
    ("s3-get-range", DOC_KEYS, "us-east-1", "s3", datetime.datetime(2013, 5, 24, 0, 0, 0),
     "GET", "https://examplebucket.s3.amazonaws.com/test.txt", {"Range": "bytes=0-9"}, b"", True),
    ("s3-put-path-style", DOC_KEYS, "eu-west-3", "s3", datetime.datetime(2026, 12, 2, 13, 5, 9),
     "PUT", "http://127.0.0.1:9000/lf-images/farm%20one/job%C3%A9-0.png",
     {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + bytes(range(256)), True),
    ("s3-delete", DOC_KEYS, "us-east-1", "s3", datetime.datetime(2026, 1, 31, 23, 59, 59),
     "DELETE", "http://minio.local:9000/bucket/a/b/c.png", {}, b"", True),
    ("s3-head-bucket", DOC_KEYS, "us-east-1", "s3", datetime.datetime(2026, 12, 2, 0, 0, 1),
     "HEAD", "http://localhost:5000/bucket", {}, b"", True),
    ("s3-list", DOC_KEYS, "us-east-1", "s3", datetime.datetime(2026, 12, 2, 10, 0, 0),
     "GET", "http://localhost:5000/bucket?list-type=2&prefix=a%2Fb&max-keys=1", {}, b"", True),
]


def esc(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n")


def main():
    recs = []
    for name, (ak, sk), region, service, when, method, url, headers, body, s3 in CASES:
        req = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
        cls = botocore.auth.S3SigV4Auth if s3 else botocore.auth.SigV4Auth
        signer = cls(Credentials(ak, sk), service, region)
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(req)
        # Recompute the canonical request as add_auth saw it (without the header it added).
        auth = req.headers["Authorization"]
        del req.headers["Authorization"]
        canon = signer.canonical_request(req)
        sts = signer.string_to_sign(req, canon)
        lines = canon.split("\n")
        signed = lines[-2].split(";")
        # The canonical header lines ("name:value", after the query line) give the values botocore
        # signed, host included (botocore takes it from the URL).
        canon_hdrs = dict(l.split(":", 1) for l in lines[3:3 + len(signed)])
        out = [f"name\t{name}", f"method\t{method}", f"path\t{lines[1]}", f"query\t{lines[2]}",
               f"payload\t{lines[-1]}", f"access\t{ak}", f"secret\t{sk}", f"region\t{region}",
               f"service\t{service}", f"date\t{req.context['timestamp']}"]
        for h in signed:
            out.append(f"header\t{h}\t{esc(canon_hdrs[h])}")
        out += [f"canonical\t{esc(canon)}", f"sts\t{esc(sts)}",
                f"auth\t{auth}"]
        # AWS's published answers for the two requests taken from AWS's own examples.
        published = {"get-vanilla": "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
                     "s3-get-range": "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"}
        assert name not in published or auth.endswith("Signature=" + published[name]), name
        assert lines[-1] in ("UNSIGNED-PAYLOAD", hashlib.sha256(body).hexdigest())
        recs.append("\n".join(out))
    with open(OUT, "w") as f:
        f.write(f"# made by tests/reference/make_sigv4_vectors.py with botocore {botocore.__version__}\n")
        f.write("\n%%\n".join(recs) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
