# App OTA: a bundle of .mpy files with a SHA-256 manifest, installed by one rename and
# rolled back when the new app does not reach a good cycle within N boots.
#
# Layout on the device:
#   /apps/<version>/...      one folder per installed app (boucle_fw/*.mpy)
#   /apps/current.json       {"version", "previous", "boots", "good"}: which folder boot.py
#                            puts first on sys.path. Written to a .tmp file then renamed
#                            over: that rename is the install (and the rollback).
# Bundle (a folder served over HTTP, or any source with read(name) -> bytes):
#   manifest.json            {"version": "1.2.0", "files": {"boucle_fw/device.mpy": "<sha256 hex>", ...}}
# Runs on CPython and MicroPython.

import json
import os
from binascii import hexlify
from hashlib import sha256

APPS = "/apps"
POINTER = "current.json"
SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"


class OtaError(Exception):
    pass


def digest(data):
    return hexlify(sha256(data).digest()).decode()


def _safe_name(part):
    if not part or part in (".", ".."):
        return False
    for c in part:
        if c not in SAFE:
            return False
    return True


def check_manifest(manifest):
    """Raise OtaError unless the manifest is well-formed and its paths stay in the folder."""
    if not isinstance(manifest, dict):
        raise OtaError("manifest is not a JSON object")
    v = manifest.get("version")
    if not isinstance(v, str) or not _safe_name(v):
        raise OtaError("manifest version %r is not a safe folder name" % (v,))
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise OtaError("manifest lists no files")
    for path, h in files.items():
        if not isinstance(path, str) or not all(_safe_name(p) for p in path.split("/")):
            raise OtaError("manifest path %r is not allowed" % (path,))
        if not isinstance(h, str) or len(h) != 64:
            raise OtaError("manifest hash of %s is not a SHA-256 hex digest" % path)
    return v


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _makedirs(path):
    cur = ""
    for part in path.split("/"):
        if not part:
            continue
        cur += "/" + part
        if not _exists(cur):
            os.mkdir(cur)


def rmtree(path):
    if not _exists(path):
        return
    if os.stat(path)[0] & 0x4000:  # directory
        for name in os.listdir(path):
            rmtree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def read_pointer(apps=APPS):
    try:
        with open(apps + "/" + POINTER) as f:
            p = json.load(f)
        return p if isinstance(p, dict) and p.get("version") else None
    except (OSError, ValueError):
        return None


def write_pointer(pointer, apps=APPS):
    tmp = apps + "/" + POINTER + ".tmp"
    with open(tmp, "w") as f:
        json.dump(pointer, f)
    os.rename(tmp, apps + "/" + POINTER)  # the one atomic step


def install(source, apps=APPS, fw=None):
    """Download, verify and activate a bundle; returns the new version.

    Nothing changes for the running app until the final rename of current.json; a power
    cut before it leaves the old app active (the half-written folder is cleaned later).
    """
    try:
        manifest = json.loads(source.read("manifest.json"))
    except ValueError:
        raise OtaError("manifest.json is not JSON")
    version = check_manifest(manifest)
    if fw is not None and version == fw:
        raise OtaError("version %s is already running" % version)
    _makedirs(apps)
    staging = apps + "/" + version + ".new"
    rmtree(staging)
    _makedirs(staging)
    for path, want in manifest["files"].items():
        data = source.read(path)
        got = digest(data)
        if got != want:
            rmtree(staging)
            raise OtaError("%s: SHA-256 %s does not match the manifest (%s) — rebuild the bundle"
                           % (path, got[:12], want[:12]))
        parts = path.split("/")
        if len(parts) > 1:
            _makedirs(staging + "/" + "/".join(parts[:-1]))
        with open(staging + "/" + path, "wb") as f:
            f.write(data)
    final = apps + "/" + version
    cur = read_pointer(apps)
    if cur is not None and cur.get("version") == version:
        raise OtaError("version %s is already active" % version)
    rmtree(final)
    os.rename(staging, final)
    previous = cur["version"] if cur is not None else None
    write_pointer({"version": version, "previous": previous, "boots": 0, "good": False}, apps)
    return version


def select_app(max_boots=3, apps=APPS):
    """At boot (boot.py): the app folder to run, or None for the base app in /lib.

    Counts the boots of an app not yet confirmed good; past max_boots, switches back to
    the previous app (or the base app) by rewriting the pointer.
    """
    p = read_pointer(apps)
    if p is None:
        return None
    if not p.get("good"):
        p["boots"] = p.get("boots", 0) + 1
        if p["boots"] > max_boots:
            prev = p.get("previous")
            bad = p["version"]
            if prev:
                write_pointer({"version": prev, "previous": None, "boots": 0, "good": True,
                               "rolled_back_from": bad}, apps)
            else:
                os.remove(apps + "/" + POINTER)
            rmtree(apps + "/" + bad)
            return apps + "/" + prev if prev else None
        write_pointer(p, apps)
    if not _exists(apps + "/" + p["version"]):
        return None
    return apps + "/" + p["version"]


def mark_good(apps=APPS):
    """The running app completed a good cycle: keep it; remove older folders."""
    p = read_pointer(apps)
    if p is None or p.get("good"):
        return False
    p["good"] = True
    write_pointer(p, apps)
    keep = (p["version"], p.get("previous"), POINTER)
    for name in os.listdir(apps):
        if name not in keep:
            rmtree(apps + "/" + name)
    return True
