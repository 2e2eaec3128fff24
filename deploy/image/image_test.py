#!/usr/bin/env python3
"""Proves Strata's image recipe: builds the runtime root file system with build-rootfs.sh from
runtime-packages.txt (reusing the mmdebstrap base cached in /var/cache/strata-image, or
$STRATA_IMAGE_CACHE, when its package list and recipe are unchanged), then inside it:
every binary's libraries resolve (`ldd`), every directly linked library's package is in the
list with its soname in the comment above it, the binaries run as the image's user, and a
coordinator and a worker (under tini, in their own PID namespace, on loopback) serve /healthz
and /readyz, the worker registers without --train_binary, the CLI lists it, and SIGTERM ends
them with exit 0. Checks the exported OCI archive (index.json -> manifest -> config and layer,
each blob's sha256 its name) and that the Dockerfile installs exactly the two shared lists.

Needs root (mmdebstrap's root mode, chroot, namespaces); skipped with the reason otherwise.
Writes JUnit XML to $XML_OUTPUT_FILE so skips are counted as skips.
"""
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from xml.sax.saxutils import quoteattr, escape

BINARIES = {  # name -> its path under the workspace (Bazel's output tree)
    "strata-coordinator": "services/coordinator/strata-coordinator",
    "strata-worker": "services/worker/strata-worker",
    "strata-train": "services/trainer/strata-train",
    "strata": "services/cli/strata",
    "strata-edge": "services/edge/strata-edge",
}
UID = 65532
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENV = {**os.environ, "PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"}


def workspace():
    """The test's runfiles (under Bazel) or the repository (run by hand)."""
    srcdir = os.environ.get("TEST_SRCDIR")
    if srcdir:
        return os.path.join(srcdir, os.environ.get("TEST_WORKSPACE", "strata"))
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


WS = workspace()
HERE = os.path.join(WS, "deploy", "image")
sys.path.insert(0, HERE)
import oci_layout  # noqa: E402


def binary_path(name):
    under_bazel = os.path.join(WS, BINARIES[name])
    if os.path.exists(under_bazel):
        return under_bazel
    return os.path.join(WS, "bazel-bin", BINARIES[name])


def read_list(path):
    """Package names of a list file: '#' comments, names separated by white space."""
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            names += line.split("#", 1)[0].split()
    return names


def commented_packages(path):
    """package -> the comment lines directly above it (since the previous package or blank)."""
    result, comment = {}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            text, _, note = line.partition("#")
            if text.strip():
                for name in text.split():
                    result[name] = " ".join(comment)
                comment = []
            elif note:
                comment.append(note.strip())
            else:
                comment = []
    return result


def run(argv, timeout=120, check=True, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=ENV,
                            **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def http_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


class ListsTest(unittest.TestCase):
    """The Dockerfile and build-rootfs.sh share the package lists; the build list is setup.sh's."""

    def test_dockerfile_installs_only_the_shared_lists(self):
        dockerfile = os.path.join(HERE, "Dockerfile")
        steps = oci_layout.instructions(dockerfile)
        stages, installs = 0, {}
        for number, keyword, arguments in steps:
            if keyword == "FROM":
                stages += 1
            if keyword != "RUN" or "apt-get install" not in arguments:
                continue
            mounts = dict(re.findall(r"--mount=type=bind,source=(\S+?),target=(\S+)", arguments))
            mounts = {target: source for source, target in mounts.items()}
            for segment in re.findall(r"apt-get install((?:(?!&&).)*)", arguments):
                words = re.sub(r"(?:^|\s)-\S+", " ", segment).strip()
                match = re.fullmatch(r"\$\(sed 's/#\.\*//' (/tmp/\S+)\)", words)
                self.assertIsNotNone(match, f"Dockerfile:{number}: apt-get install must take "
                                            f"only $(sed 's/#.*//' LIST), not {words!r}")
                self.assertIn(match.group(1), mounts,
                              f"Dockerfile:{number}: {match.group(1)} is not a bind mount")
                installs[stages] = mounts[match.group(1)]
        self.assertEqual(installs, {1: "deploy/image/build-packages.txt",
                                    2: "deploy/image/runtime-packages.txt"})
        with open(os.path.join(HERE, "build-rootfs.sh"), encoding="utf-8") as f:
            self.assertIn("list=$here/runtime-packages.txt", f.read())

    def test_build_packages_are_in_setup_sh(self):
        setup_sh = os.path.join(WS, "deploy", "setup.sh")  # //deploy:setup.sh in the runfiles.
        with open(setup_sh, encoding="utf-8") as f:
            text = f.read()
        block = re.search(r"^PACKAGES=\((.*?)^\)", text, re.S | re.M)
        self.assertIsNotNone(block, "deploy/setup.sh: no PACKAGES=( ... ) list")
        setup = set()
        for line in block.group(1).splitlines():
            setup.update(line.split("#", 1)[0].split())
        build = read_list(os.path.join(HERE, "build-packages.txt"))
        self.assertTrue(build)
        self.assertEqual([p for p in build if p not in setup], [],
                         "build-packages.txt names packages deploy/setup.sh does not install")

    def test_oci_config_follows_the_dockerfile(self):
        config = oci_layout.runtime_config(os.path.join(HERE, "Dockerfile"))
        self.assertEqual(config["User"], "strata")
        self.assertEqual(config["Entrypoint"], ["/usr/bin/tini", "--"])
        self.assertEqual(config["Cmd"], ["strata-coordinator"])
        self.assertIn("9090/tcp", config["ExposedPorts"])


class RootfsTest(unittest.TestCase):
    """The root file system build-rootfs.sh makes, and the daemons running inside it."""

    root = oci = skip_reason = None

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            cls.skip_reason = "needs root: mmdebstrap's root mode, chroot and namespaces"
            return
        if shutil.which("mmdebstrap", path=ENV["PATH"]) is None:
            cls.skip_reason = "mmdebstrap is not installed (deploy/setup.sh installs it)"
            return
        if subprocess.run(["chroot", "/", "true"], env=ENV, capture_output=True).returncode:
            cls.skip_reason = "chroot is not permitted on this machine"
            return
        if subprocess.run(["unshare", "--mount", "--pid", "--fork", "true"], env=ENV,
                          capture_output=True).returncode:
            cls.skip_reason = "mount and PID namespaces (unshare) are not permitted here"
            return
        tmp = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp()
        cls.root = os.path.join(tmp, "rootfs")
        cls.oci = os.path.join(tmp, "strata-oci.tar")
        cache = os.environ.get("STRATA_IMAGE_CACHE", "/var/cache/strata-image")
        start = time.monotonic()
        result = run(["bash", os.path.join(HERE, "build-rootfs.sh"), "--out", cls.root,
                      "--oci", cls.oci, "--tag", "strata:test", "--cache-dir", cache]
                     + [binary_path(n) for n in BINARIES], timeout=270, check=False)
        print(result.stdout[-2000:], result.stderr[-4000:], sep="\n")
        print(f"build-rootfs.sh took {time.monotonic() - start:.1f} s")
        if result.returncode != 0:
            raise AssertionError(f"build-rootfs.sh exited {result.returncode}")

    @classmethod
    def tearDownClass(cls):
        # A few hundred MB that no later run reads (Bazel empties TEST_TMPDIR before each).
        if cls.root and os.path.isdir(cls.root):
            shutil.rmtree(cls.root)
        if cls.oci and os.path.exists(cls.oci):
            os.remove(cls.oci)

    def setUp(self):
        if self.skip_reason:
            self.skipTest(self.skip_reason)

    def chroot(self, argv, user=True, **kwargs):
        spec = [f"--userspec={UID}:{UID}"] if user else []
        return run(["chroot", *spec, self.root, "/usr/bin/env", "-i", "PATH=" + PATH,
                    "HOME=/var/lib/strata", *argv], **kwargs)

    def test_every_listed_package_is_installed(self):
        status = self.chroot(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n"]).stdout
        installed = {line.split()[0] for line in status.splitlines() if line.endswith(" installed")}
        listed = read_list(os.path.join(HERE, "runtime-packages.txt"))
        self.assertEqual([p for p in listed if p not in installed], [])

    def test_ldd_finds_every_library(self):
        for name in BINARIES:
            out = self.chroot(["ldd", "/usr/local/bin/" + name]).stdout
            self.assertIn("libc.so.6 =>", out, name)
            missing = [line.strip() for line in out.splitlines() if "not found" in line]
            self.assertEqual(missing, [], f"{name} inside the image")

    def test_list_names_the_package_of_every_linked_library(self):
        owners = self.package_owners()
        listed = commented_packages(os.path.join(HERE, "runtime-packages.txt"))
        problems = []
        for name in BINARIES:
            binary = os.path.join(self.root, "usr/local/bin", name)
            dynamic = run(["readelf", "-d", self.root + os.readlink(binary)]).stdout
            needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic)
            self.assertTrue(needed, name)
            paths = self.ldd_paths(name)
            for soname in needed:
                package = self.owner(owners, paths.get(soname))
                if package is None:
                    problems.append(f"{name}: {soname} belongs to no installed package")
                elif package not in listed:
                    problems.append(f"{name}: {soname} is in {package}, not in the list")
                elif not any(fnmatch.fnmatchcase(soname, pattern)
                             for pattern in re.findall(r"[\w.+*-]+\.so\b[\w.*]*", listed[package])):
                    problems.append(f"{name}: the comment above {package} does not name {soname}")
        if problems:
            self.fail("\n".join(problems))

    def ldd_paths(self, name):
        paths = {}
        for line in self.chroot(["ldd", "/usr/local/bin/" + name]).stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "=>":
                paths[parts[0]] = parts[2]
            elif parts and parts[0].startswith("/"):
                paths[os.path.basename(parts[0])] = parts[0]
        return paths

    def package_owners(self):
        """Every installed file (merged-/usr spelling) -> its package, from dpkg's lists."""
        owners = {}
        info = os.path.join(self.root, "var/lib/dpkg/info")
        for entry in os.listdir(info):
            if entry.endswith(".list"):
                package = entry[:-len(".list")].split(":", 1)[0]
                with open(os.path.join(info, entry), encoding="utf-8") as f:
                    for line in f:
                        owners[merged(line.strip())] = package
        return owners

    def owner(self, owners, path):
        if path is None:
            return None
        real = self.chroot(["readlink", "-f", path], user=False).stdout.strip()
        return owners.get(merged(path)) or owners.get(merged(real))

    def test_binaries_run_as_the_image_user(self):
        for name in BINARIES:
            out = self.chroot([name, "--version"]).stdout
            self.assertTrue(out.startswith("strata "), f"{name} --version printed {out!r}")

    def test_coordinator_and_worker_serve_health_inside_the_image(self):
        for leftover in ("coordinator.port", "coordinator.metrics", "worker.port",
                         "worker.metrics"):
            path = os.path.join(self.root, "tmp", leftover)
            if os.path.exists(path):
                os.remove(path)
        coordinator = self.daemon("coordinator", [
            "strata-coordinator", "--listen=127.0.0.1:0", "--port_file=/tmp/coordinator.port",
            "--metrics_listen=127.0.0.1:0", "--metrics_port_file=/tmp/coordinator.metrics",
            "--serve_plaintext", "--allow_unauthenticated_workers",
            "--heartbeat_interval=200ms", "--data_dir=/var/lib/strata/coordinator"])
        worker = None
        try:
            port = self.port_file("coordinator.port", coordinator)
            metrics = self.port_file("coordinator.metrics", coordinator)
            self.wait_status(metrics, "/healthz", coordinator)
            self.wait_status(metrics, "/readyz", coordinator)
            # No --train_binary: the worker finds strata-train through the image's layout.
            worker = self.daemon("worker", [
                "strata-worker", f"--coordinator=127.0.0.1:{port}", "--insecure",
                "--serve_plaintext", "--name=image-worker", "--listen=127.0.0.1:0",
                "--port_file=/tmp/worker.port", "--metrics_listen=127.0.0.1:0",
                "--metrics_port_file=/tmp/worker.metrics", "--work_dir=/var/lib/strata/worker"])
            worker_metrics = self.port_file("worker.metrics", worker)
            self.wait_status(worker_metrics, "/healthz", worker)
            self.wait_status(worker_metrics, "/readyz", worker)
            nodes = self.chroot(["strata", f"--coordinator=127.0.0.1:{port}", "--insecure",
                                 "node", "list", "--output=json"]).stdout
            self.assertIn("image-worker", nodes)
            for process, name in ((worker, "worker"), (coordinator, "coordinator")):
                self.assertEqual(self.stop(process), 0, f"{name} after SIGTERM:\n{self.log(name)}")
        finally:
            for process in (worker, coordinator):
                if process is not None and process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()

    def daemon(self, name, argv):
        """Runs argv in the image as the container would: tini as PID 1, the image's user."""
        log = open(os.path.join(os.path.dirname(self.root), name + ".log"), "w")
        return subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--kill-child",
             "--mount-proc=" + os.path.join(self.root, "proc"),
             "chroot", f"--userspec={UID}:{UID}", self.root, "/usr/bin/env", "-i",
             "PATH=" + PATH, "HOME=/var/lib/strata", "/usr/bin/tini", "--", *argv],
            stdout=log, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)

    def log(self, name):
        with open(os.path.join(os.path.dirname(self.root), name + ".log")) as f:
            return f.read()[-3000:]

    def port_file(self, name, process, timeout=30):
        path = os.path.join(self.root, "tmp", name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    text = f.read().strip()
                if text.isdigit():
                    return int(text)
            self.assertIsNone(process.poll(), f"exited before writing {name}")
            time.sleep(0.1)
        self.fail(f"no {name} after {timeout} s")

    def wait_status(self, port, path, process, timeout=30):
        deadline, status = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            status = http_status(port, path)
            if status == 200:
                return
            self.assertIsNone(process.poll(), f"exited while waiting for {path}")
            time.sleep(0.2)
        self.fail(f"{path} on port {port}: {status} after {timeout} s")

    def stop(self, process):
        # unshare ignores SIGTERM; tini forwards it to the daemon and exits with its status.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            return None

    def test_oci_archive(self):
        with tarfile.open(self.oci) as archive:
            def blob(digest):
                algorithm, _, hexdigest = digest.partition(":")
                self.assertEqual(algorithm, "sha256")
                return archive.extractfile(f"blobs/sha256/{hexdigest}")

            def checked(descriptor):
                f = blob(descriptor["digest"])
                digest, size = hashlib.sha256(), 0
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
                    size += len(chunk)
                self.assertEqual("sha256:" + digest.hexdigest(), descriptor["digest"])
                self.assertEqual(size, descriptor["size"])
                return blob(descriptor["digest"])

            self.assertEqual(json.load(archive.extractfile("oci-layout")),
                             {"imageLayoutVersion": "1.0.0"})
            index = json.load(archive.extractfile("index.json"))
            self.assertEqual(index["schemaVersion"], 2)
            [entry] = index["manifests"]
            self.assertEqual(entry["annotations"]["org.opencontainers.image.ref.name"], "test")
            manifest = json.load(checked(entry))
            self.assertEqual(manifest["mediaType"], oci_layout.MANIFEST_TYPE)
            self.assertEqual(manifest["config"]["mediaType"], oci_layout.CONFIG_TYPE)
            config = json.load(checked(manifest["config"]))
            [layer] = manifest["layers"]
            self.assertEqual(layer["mediaType"], oci_layout.LAYER_TYPE)
            self.assertEqual(config["rootfs"]["diff_ids"], [layer["digest"]])
            blobs = {m.name for m in archive.getmembers() if m.isfile()}
            self.assertEqual(blobs, {"oci-layout", "index.json", "manifest.json"} | {
                "blobs/sha256/" + d["digest"].split(":")[1]
                for d in (entry, manifest["config"], layer)})
            docker = json.load(archive.extractfile("manifest.json"))
            self.assertEqual(docker, [{
                "Config": "blobs/sha256/" + manifest["config"]["digest"].split(":")[1],
                "RepoTags": ["strata:test"],
                "Layers": ["blobs/sha256/" + layer["digest"].split(":")[1]]}])
            self.assertEqual(config["config"], oci_layout.runtime_config(
                os.path.join(HERE, "Dockerfile")))
            members = {}
            with tarfile.open(fileobj=checked(layer), mode="r|") as files:
                for member in files:
                    members[os.path.normpath(member.name)] = member
        for name, path in BINARIES.items():
            target = "opt/strata/" + path
            self.assertTrue(members[target].isfile() and members[target].mode & 0o111, target)
            self.assertEqual(members["usr/local/bin/" + name].linkname, "/" + target)
        self.assertEqual(members["var/lib/strata"].uid, UID)
        self.assertTrue(members["usr/bin/tini"].isfile())
        self.assertFalse([n for n, m in members.items() if m.ischr() or m.isblk()],
                         "device nodes in the layer")


def merged(path):
    """The path as merged /usr spells it (/lib/x -> /usr/lib/x)."""
    for alias in ("/bin/", "/sbin/", "/lib/", "/lib64/"):
        if path.startswith(alias):
            return "/usr" + path
    return path


class JUnitResult(unittest.TextTestResult):
    """Records each test's outcome for the JUnit XML Bazel reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases, self.started = [], 0.0

    def startTest(self, test):
        self.started = time.monotonic()
        super().startTest(test)

    def record(self, test, kind, text=""):
        self.cases.append((test.id(), kind, text, time.monotonic() - self.started))

    def addSuccess(self, test):
        super().addSuccess(test)
        self.record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.record(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self.record(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.record(test, "skipped", reason)


def write_junit(path, cases):
    out = io.StringIO()
    failures = sum(kind == "failure" for _, kind, _, _ in cases)
    errors = sum(kind == "error" for _, kind, _, _ in cases)
    skipped = sum(kind == "skipped" for _, kind, _, _ in cases)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n')
    out.write(f'<testsuite name="image_test" tests="{len(cases)}" failures="{failures}" '
              f'errors="{errors}" skipped="{skipped}">\n')
    for test_id, kind, text, seconds in cases:
        classname, _, name = test_id.rpartition(".")
        out.write(f'<testcase classname={quoteattr(classname)} name={quoteattr(name)} '
                  f'time="{seconds:.3f}"')
        if kind == "pass":
            out.write("/>\n")
            continue
        tag = {"failure": "failure", "error": "error", "skipped": "skipped"}[kind]
        out.write(f'><{tag} message={quoteattr(text.splitlines()[-1] if text else kind)}>'
                  f'{escape(text)}</{tag}></testcase>\n')
    out.write("</testsuite>\n</testsuites>\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write(out.getvalue())


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    runner = unittest.TextTestRunner(verbosity=2, resultclass=JUnitResult, stream=sys.stdout)
    result = runner.run(suite)  # a failing setUpClass is recorded as one error
    if os.environ.get("XML_OUTPUT_FILE"):
        write_junit(os.environ["XML_OUTPUT_FILE"], result.cases)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
