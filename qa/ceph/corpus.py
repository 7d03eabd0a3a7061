#!/usr/bin/python3
"""Upload the locator test corpus into the Ceph lab and describe it in corpus.json.

usage: corpus.py STATE_DIR     (runs inside the lab's frontend namespace: radosgw is
                                 on 127.0.0.1 there; STATE_DIR/env describes the lab)

Objects come from four uploaders (boto3 put_object, boto3 upload_file with 8 MiB parts,
s3cmd single PUT, s3cmd multipart with 15 MiB parts), in sizes around RGW's 4 MiB
head/stripe boundaries, with awkward keys, in a versioned bucket and in a bucket on a
compressed placement. Corpus buckets get a policy allowing anonymous GET, so the C++
tests can fetch through radosgw with a plain HTTP client.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MiB = 1 << 20


def load_env(state):
    env = {}
    with open(os.path.join(state, "env")) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v.strip("'\"")
    return env


def data(size, seed, compressible=False):
    if compressible:
        unit = (f"line {seed} of a compressible text body\n").encode()
        return (unit * (size // len(unit) + 1))[:size]
    # Deterministic per seed, distinct per object: a repeated random block would hide
    # stripe mix-ups, so derive each MiB from the seed and its index.
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.shake_256(f"{seed}:{i}".encode()).digest(min(MiB, size - len(out)))
        i += 1
    return bytes(out)


def main():
    state = sys.argv[1]
    env = load_env(state)
    endpoint = env["S3_ENDPOINT"]
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=env["S3_MAIN_ACCESS_KEY"],
                      aws_secret_access_key=env["S3_MAIN_SECRET_KEY"], region_name="default",
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))
    corpus = []
    work = tempfile.mkdtemp(prefix="xo-corpus-")

    def public(bucket):
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": [f"arn:aws:s3:::{bucket}/*"]}]}
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))

    def record(bucket, key, body, uploader, version="", expect="offloadable"):
        corpus.append({"bucket": bucket, "key": key, "version_id": version, "size": len(body),
                       "uploader": uploader, "expect": expect,
                       "sha256": hashlib.sha256(body).hexdigest()})

    s3cfg = os.path.join(work, "s3cfg")
    host = endpoint.split("://", 1)[1]
    with open(s3cfg, "w") as f:
        f.write(f"[default]\naccess_key = {env['S3_MAIN_ACCESS_KEY']}\nsecret_key = {env['S3_MAIN_SECRET_KEY']}\n"
                f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\nbucket_location = default\n"
                "signature_v2 = False\n")

    def s3cmd_put(bucket, key, body, multipart):
        path = os.path.join(work, "body")
        with open(path, "wb") as f:
            f.write(body)
        args = ["s3cmd", "-c", s3cfg, "--no-progress", "--no-mime-magic", "put", path, f"s3://{bucket}/{key}"]
        args[5:5] = ["--multipart-chunk-size-mb=15"] if multipart else ["--disable-multipart"]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        os.unlink(path)

    # Plain bucket: every uploader, the size ladder, awkward keys.
    b = "xo-corpus"
    s3.create_bucket(Bucket=b)
    public(b)
    ladder = [0, 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 10 * MiB, 100 * MiB]
    for size in ladder:
        body = data(size, f"put-{size}")
        s3.put_object(Bucket=b, Key=f"put/{size}", Body=body)
        record(b, f"put/{size}", body, "boto3.put_object")
    mp8 = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=2)
    for size in [4 * MiB + 1, 10 * MiB, 20 * MiB + 3, 100 * MiB]:
        body = data(size, f"upload_file-{size}")
        path = os.path.join(work, "uf")
        with open(path, "wb") as f:
            f.write(body)
        s3.upload_file(path, b, f"upload_file/{size}", Config=mp8)
        os.unlink(path)
        record(b, f"upload_file/{size}", body, "boto3.upload_file(8MiB parts)")
    for size in [1, 4 * MiB, 10 * MiB]:
        body = data(size, f"s3cmd-{size}")
        s3cmd_put(b, f"s3cmd/{size}", body, multipart=False)
        record(b, f"s3cmd/{size}", body, "s3cmd")
    for size in [40 * MiB + 7, 100 * MiB]:
        body = data(size, f"s3cmd-mp-{size}")
        s3cmd_put(b, f"s3cmd-mp/{size}", body, multipart=True)
        record(b, f"s3cmd-mp/{size}", body, "s3cmd(15MiB parts)")
    awkward = ["_leading", "__double", "_", "ünïcödé/ключ ✓", "with space/and  more ", "a/b/c/d.txt",
               "_ü space/x", "trailing/"]
    for i, key in enumerate(awkward):
        body = data(5 * MiB + i, f"awkward-{i}")
        s3.put_object(Bucket=b, Key=key, Body=body)
        record(b, key, body, "boto3.put_object")
    body = data(20 * MiB + 5, "mp-underscore")
    path = os.path.join(work, "mpu")
    with open(path, "wb") as f:
        f.write(body)
    s3.upload_file(path, b, "_mp under ✓", Config=mp8)
    os.unlink(path)
    record(b, "_mp under ✓", body, "boto3.upload_file(8MiB parts)")
    body = data(5 * MiB, "meta")
    s3.put_object(Bucket=b, Key="meta/colored", Body=body, ContentType="text/x-xo",
                  Metadata={"color": "blue", "shape": "round"})
    record(b, "meta/colored", body, "boto3.put_object")
    # corrupt/victim: the cluster test damages and restores its manifest xattr.
    body = data(9 * MiB, "victim")
    s3.put_object(Bucket=b, Key="corrupt/victim", Body=body)
    record(b, "corrupt/victim", body, "boto3.put_object", expect="corruption_target")
    body = data(6 * MiB, "s3cmd-under")
    s3cmd_put(b, "_s3cmd/ü", body, multipart=False)
    record(b, "_s3cmd/ü", body, "s3cmd")

    # Versioned bucket: several versions per key, a multipart version, a delete marker.
    v = "xo-versioned"
    s3.create_bucket(Bucket=v)
    s3.put_bucket_versioning(Bucket=v, VersioningConfiguration={"Status": "Enabled"})
    public(v)
    for key, sizes in (("doc", [1 * MiB, 5 * MiB, 9 * MiB + 1]), ("_v", [3, 4 * MiB + 2])):
        for n, size in enumerate(sizes):
            body = data(size, f"ver-{key}-{n}")
            r = s3.put_object(Bucket=v, Key=key, Body=body)
            record(v, key, body, "boto3.put_object", version=r["VersionId"])
        # The key without versionId is the latest version (through the OLH).
        record(v, key, body, "boto3.put_object")
    body = data(17 * MiB, "ver-mp")
    path = os.path.join(work, "vmp")
    with open(path, "wb") as f:
        f.write(body)
    s3.upload_file(path, v, "mp", Config=mp8)
    os.unlink(path)
    ver = s3.head_object(Bucket=v, Key="mp")["VersionId"]
    record(v, "mp", body, "boto3.upload_file(8MiB parts)", version=ver)
    body = data(2 * MiB, "ver-gone")
    s3.put_object(Bucket=v, Key="gone", Body=body)
    s3.delete_object(Bucket=v, Key="gone")
    record(v, "gone", b"", "boto3.delete_object", expect="delete_marker")

    # Compressed placement: RGW stores compressed bytes; not offloadable.
    z = "xo-compressed"
    s3.create_bucket(Bucket=z, CreateBucketConfiguration={"LocationConstraint": "default:compressed"})
    public(z)
    body = data(6 * MiB, "z-put", compressible=True)
    s3.put_object(Bucket=z, Key="z/put", Body=body)
    record(z, "z/put", body, "boto3.put_object", expect="compressed")
    body = data(17 * MiB, "z-mp", compressible=True)
    path = os.path.join(work, "zmp")
    with open(path, "wb") as f:
        f.write(body)
    s3.upload_file(path, z, "z/mp", Config=mp8)
    os.unlink(path)
    record(z, "z/mp", body, "boto3.upload_file(8MiB parts)", expect="compressed")

    for f in os.listdir(work):
        os.unlink(os.path.join(work, f))
    # A tenant's bucket: entrypoint "t1/tbucket", instance ".bucket.meta.t1:tbucket:<id>".
    os.environ["CEPH_CONF"] = env["CEPH_CONF"]
    subprocess.run(["radosgw-admin", "-n", "client.admin", "user", "create", "--tenant", "t1", "--uid", "tuser",
                    "--display-name", "Tenant user", "--access-key", "XOTENANTACCESSKEY001",
                    "--secret-key", "xotenantsecretkey000000000000000000000001"], check=True,
                   stdout=subprocess.DEVNULL)
    ts3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="XOTENANTACCESSKEY001",
                       aws_secret_access_key="xotenantsecretkey000000000000000000000001", region_name="default",
                       config=Config(s3={"addressing_style": "path"}))
    ts3.create_bucket(Bucket="tbucket")
    ts3.put_bucket_policy(Bucket="tbucket", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3::t1:tbucket/*"]}]}))
    for key, size in (("_t/obj ✓", 6 * MiB + 1), ("plain", 9 * MiB)):
        body = data(size, f"tenant-{key}")
        ts3.put_object(Bucket="tbucket", Key=key, Body=body)
        record("tbucket", key, body, "boto3.put_object(tenant t1)")
        corpus[-1]["tenant"] = "t1"

    os.rmdir(work)
    out = os.path.join(state, "corpus.json")
    with open(out + ".tmp", "w") as f:
        json.dump(corpus, f, indent=1, ensure_ascii=False)
    os.replace(out + ".tmp", out)
    print(f"corpus: {len(corpus)} entries, {sum(c['size'] for c in corpus) // MiB} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
