#!/usr/bin/env python3
"""Writes an OCI image layout (oci-layout, index.json, blobs/sha256/...) around one layer tar,
with the image configuration (USER, WORKDIR, ENV, EXPOSE, ENTRYPOINT, CMD) read from the last
stage of a Dockerfile, so the exported image runs as the Dockerfile's would. Also writes
Docker's manifest.json beside index.json so `docker load` takes the archive too.

Every blob is named by its sha256; the layer is moved (not copied) into blobs/ and stays
uncompressed (its digest is also its diff_id).

  oci_layout.py --layout DIR --layer LAYER.tar --dockerfile Dockerfile --tag NAME:TAG
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import sys

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
# What Debian's base images set and a Dockerfile stage inherits.
BASE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


class DockerfileError(Exception):
    pass


def instructions(path):
    """(line number, INSTRUCTION, arguments) of the Dockerfile, continuations joined."""
    result = []
    pending, start = "", 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            stripped = line.strip()
            if not pending and (not stripped or stripped.startswith("#")):
                continue
            if pending and stripped.startswith("#"):
                continue
            if not pending:
                start = number
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            text = pending + stripped
            pending = ""
            keyword, _, arguments = text.partition(" ")
            result.append((start, keyword.upper(), arguments.strip()))
    return result


def exec_form(path, number, keyword, arguments):
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DockerfileError(f"{path}:{number}: {keyword} must be in JSON (exec) form")
    return value


def runtime_config(path):
    """The container configuration of the Dockerfile's last stage."""
    steps = instructions(path)
    froms = [i for i, (_, keyword, _) in enumerate(steps) if keyword == "FROM"]
    if not froms:
        raise DockerfileError(f"{path}: no FROM")
    env = {k: v for k, _, v in (e.partition("=") for e in BASE_ENV)}
    config = {}
    for number, keyword, arguments in steps[froms[-1] + 1:]:
        if keyword == "USER":
            config["User"] = arguments
        elif keyword == "WORKDIR":
            config["WorkingDir"] = arguments
        elif keyword == "ENV":
            for assignment in shlex.split(arguments):
                name, equals, value = assignment.partition("=")
                if not equals:
                    raise DockerfileError(f"{path}:{number}: ENV must be NAME=value")
                env[name] = value
        elif keyword == "EXPOSE":
            for port in arguments.split():
                if not re.fullmatch(r"\d+(/(tcp|udp))?", port):
                    raise DockerfileError(f"{path}:{number}: EXPOSE {port} is not PORT[/tcp|udp]")
                config.setdefault("ExposedPorts", {})[port if "/" in port else port + "/tcp"] = {}
        elif keyword in ("ENTRYPOINT", "CMD"):
            field = {"ENTRYPOINT": "Entrypoint", "CMD": "Cmd"}[keyword]
            config[field] = exec_form(path, number, keyword, arguments)
    config["Env"] = [f"{k}={v}" for k, v in env.items()]
    return config


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def put_blob(layout, data):
    """Writes bytes as a blob; returns its descriptor fields."""
    hexdigest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", hexdigest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + hexdigest, "size": len(data)}


def encode(value):
    return json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", required=True, help="directory to write the layout in")
    parser.add_argument("--layer", required=True, help="the root file system as a tar")
    parser.add_argument("--dockerfile", required=True, help="whose last stage configures it")
    parser.add_argument("--tag", required=True, help="NAME:TAG the image is loaded as")
    args = parser.parse_args()

    name, colon, tag = args.tag.rpartition(":")
    if not colon or not name or "/" in tag or not tag:
        parser.error(f"--tag {args.tag} is not NAME:TAG")
    try:
        config = runtime_config(args.dockerfile)
    except (OSError, DockerfileError) as error:
        sys.exit(f"oci_layout.py: {error}")
    architecture = ARCHITECTURES.get(platform.machine())
    if architecture is None:
        sys.exit(f"oci_layout.py: no OCI architecture for machine {platform.machine()}")

    blobs = os.path.join(args.layout, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    layer_hex = sha256_file(args.layer)
    layer_size = os.path.getsize(args.layer)
    os.replace(args.layer, os.path.join(blobs, layer_hex))

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch \
        else datetime.datetime.now(datetime.timezone.utc)
    created = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    image_config = {
        "created": created,
        "architecture": architecture,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_hex]},
        "history": [{"created": created, "created_by": "deploy/image/build-rootfs.sh"}],
    }
    config_descriptor = {"mediaType": CONFIG_TYPE, **put_blob(args.layout, encode(image_config))}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config_descriptor,
        "layers": [{"mediaType": LAYER_TYPE, "digest": "sha256:" + layer_hex,
                    "size": layer_size}],
    }
    manifest_descriptor = {
        "mediaType": MANIFEST_TYPE,
        **put_blob(args.layout, encode(manifest)),
        "platform": {"architecture": architecture, "os": "linux"},
        "annotations": {"org.opencontainers.image.ref.name": tag,
                        "io.containerd.image.name": args.tag},
    }
    index = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [manifest_descriptor]}
    with open(os.path.join(args.layout, "index.json"), "wb") as f:
        f.write(encode(index))
    with open(os.path.join(args.layout, "oci-layout"), "wb") as f:
        f.write(encode({"imageLayoutVersion": "1.0.0"}))
    docker_manifest = [{
        "Config": "blobs/sha256/" + config_descriptor["digest"].split(":", 1)[1],
        "RepoTags": [args.tag],
        "Layers": ["blobs/sha256/" + layer_hex],
    }]
    with open(os.path.join(args.layout, "manifest.json"), "wb") as f:
        f.write(encode(docker_manifest))


if __name__ == "__main__":
    main()
