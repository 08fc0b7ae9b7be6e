"""A real Kubernetes control plane on loopback, for installing the Helm chart.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the upstream
programs, built by `devenv/kube/build.sh` into a cache outside the repository; KWOK
plays the nodes: a node it manages becomes Ready at once, a pod scheduled onto it
becomes Running and Ready without a container being run, and a Job's pod Succeeds.
Everything else is real: admission (Pod Security included), validation, the
StatefulSet, Job and garbage-collection controllers, the scheduler's placement.

`LocalKube.start()` returns once the API server is ready, the `default` namespace has
its service account and the simulated nodes are Ready; `kubeconfig` is a file for
helm, `api()` a thin authenticated HTTP call for the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import httpx

from devenv.broker import CACHE, free_port

BUILD = Path(__file__).resolve().parent / "kube" / "build.sh"
SERVICE_CIDR = "10.96.0.0/16"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


def build() -> Path:
    """The directory holding bin/, stages/ and crds/; builds them on first use (~10 min)."""
    result = subprocess.run(
        ["bash", str(BUILD)],
        env={**os.environ, "TRACE_STREAM_CACHE": str(CACHE)},
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{BUILD} failed (exit {result.returncode}); its log is above")
    return Path(result.stdout.strip().splitlines()[-1])


class LocalKube:
    """Start with `start()`, stop with `stop()`."""

    def __init__(self, nodes: int = 3) -> None:
        self.nodes = nodes
        self.workdir = Path(tempfile.mkdtemp(prefix="trace-stream-kube-"))
        self.token = os.urandom(16).hex()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = self.workdir / "kubeconfig"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self._http: httpx.Client | None = None
        self.home = Path()

    # -- life cycle ----------------------------------------------------------------

    def start(self, timeout: float = 180) -> LocalKube:
        deadline = time.monotonic() + timeout
        self.home = build()
        self._keys()
        self._etcd(deadline)
        self._apiserver(deadline)
        self._write_kubeconfig()
        self._spawn(
            "kube-controller-manager",
            f"--kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            f"--service-account-private-key-file={self.workdir / 'sa.key'}",
            f"--root-ca-file={self.workdir / 'certs' / 'apiserver.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # No real nodes to reach: a node KWOK stops heartbeating is not evicted from.
            "--controllers=*,-nodelifecycle,-nodeipam,-cloud-node-lifecycle",
        )
        self._spawn(
            "kube-scheduler",
            f"--kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
        )
        self._spawn(
            "kwok",
            f"--kubeconfig={self.kubeconfig}",
            f"--config={self.home / 'stages' / 'stages.yaml'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            f"--server-address=127.0.0.1:{free_port()}",
            "--cidr=10.244.0.1/16",
            "--node-ip=10.0.0.1",
        )
        for index in range(self.nodes):
            self._add_node(f"kwok-node-{index}", zone=f"zone-{index % 2}")
        self._wait(deadline, "the default service account", self._has_default_account)
        self._wait(deadline, f"{self.nodes} Ready nodes", self._nodes_ready)
        self._untaint_nodes()
        return self

    def stop(self, grace: float = 3) -> None:
        """Stop every process: a throwaway control plane, whose data goes with it, so
        one still draining after `grace` seconds is killed (the API server waited
        about 20 s for its watches to end)."""
        for proc in reversed(list(self._procs.values())):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace
        for proc in self._procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(15)
        self._procs.clear()
        if self._http is not None:
            self._http.close()
        for log in self._logs:
            log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalKube:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- the API -------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, **params: str) -> httpx.Response:
        """An authenticated request; the response is returned whatever its status."""
        return self._http_client().request(method, path, json=body, params=params)

    def _http_client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                base_url=self.server,
                headers={"Authorization": f"Bearer {self.token}"},
                verify=False,  # noqa: S501 - the API server's self-signed loopback cert
                timeout=30,
            )
        return self._http

    def get(self, path: str, **params: str) -> Any:
        response = self.api("GET", path, **params)
        response.raise_for_status()
        return response.json()

    def apply_crd(self, crd: dict[str, Any], timeout: float = 60) -> None:
        """Create a CustomResourceDefinition and wait until it is Established."""
        name = crd["metadata"]["name"]
        response = self.api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        if response.status_code != 409:
            response.raise_for_status()
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"

        def established() -> bool:
            conditions = self.get(path).get("status", {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        self._wait(time.monotonic() + timeout, f"CRD {name} Established", established)

    def log(self, component: str) -> str:
        return (self.workdir / f"{component}.log").read_text(errors="replace")

    # -- parts ---------------------------------------------------------------------

    def _keys(self) -> None:
        key = self.workdir / "sa.key"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(key), "2048"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(self.workdir / "sa.pub")],
            check=True,
            capture_output=True,
            timeout=60,
        )
        (self.workdir / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")

    def _etcd(self, deadline: float) -> None:
        client, peer = free_port(), free_port()
        self.etcd = f"http://127.0.0.1:{client}"
        self._spawn(
            "etcd",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd}",
            f"--advertise-client-urls={self.etcd}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",  # a throwaway cluster: speed over durability
            "--log-level=warn",
        )

        def healthy() -> bool:
            health: Any = httpx.get(f"{self.etcd}/health", timeout=2).json()
            return bool(health.get("health") == "true")

        self._wait(deadline, "etcd", healthy)

    def _apiserver(self, deadline: float) -> None:
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers={self.etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            # The default reconciler needs a routable address; loopback is refused.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={self.workdir / 'sa.pub'}",
            f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
        )

        def ready() -> bool:
            return self.api("GET", "/readyz").status_code == 200

        self._wait(deadline, "kube-apiserver", ready)

    def _write_kubeconfig(self) -> None:
        self.kubeconfig.write_text(
            "\n".join(
                [
                    "apiVersion: v1",
                    "kind: Config",
                    "clusters:",
                    "- name: local",
                    "  cluster:",
                    f"    server: {self.server}",
                    "    insecure-skip-tls-verify: true",
                    "users:",
                    "- name: admin",
                    "  user:",
                    f"    token: {self.token}",
                    "contexts:",
                    "- name: local",
                    "  context: {cluster: local, user: admin}",
                    "current-context: local",
                    "",
                ]
            )
        )
        self.kubeconfig.chmod(0o600)

    def _add_node(self, name: str, zone: str) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": zone,
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            },
        }
        self.api("POST", "/api/v1/nodes", node).raise_for_status()

    def _untaint_nodes(self) -> None:
        # Admission taints a new node not-ready; the node lifecycle controller lifts
        # the taint once the node reports Ready. That controller is off here (it would
        # also evict pods from nodes that send no kubelet heartbeats), so do its part.
        for node in self.get("/api/v1/nodes")["items"]:
            name = node["metadata"]["name"]
            patch = {"spec": {"taints": None}}
            response = self._http_client().patch(
                f"/api/v1/nodes/{name}",
                json=patch,
                headers={"Content-Type": "application/merge-patch+json"},
            )
            response.raise_for_status()

    def _has_default_account(self) -> bool:
        return self.api("GET", "/api/v1/namespaces/default/serviceaccounts/default").is_success

    def _nodes_ready(self) -> bool:
        ready = 0
        for node in self.get("/api/v1/nodes")["items"]:
            conditions = node.get("status", {}).get("conditions") or []
            ready += any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        return ready >= self.nodes

    def _spawn(self, component: str, *args: str) -> None:
        log = (self.workdir / f"{component}.log").open("wb")
        self._logs.append(log)
        self._procs[component] = subprocess.Popen(
            [str(self.home / "bin" / component), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait(self, deadline: float, what: str, check: Any) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            for component, proc in self._procs.items():
                if proc.poll() is not None:
                    tail = self.log(component)[-3000:]
                    raise RuntimeError(
                        f"{component} exited ({proc.returncode}) waiting for {what}:\n{tail}"
                    )
            try:
                if check():
                    return
            except (httpx.HTTPError, ValueError) as error:  # not up yet
                last = error
            time.sleep(0.2)
        raise TimeoutError(
            f"timed out waiting for {what} (last error: {last}); logs in {self.workdir}"
        )


if __name__ == "__main__":
    # A cluster to poke at by hand: `python -m devenv.kube`, then use the printed kubeconfig.
    with LocalKube() as kube:
        print(f"KUBECONFIG={kube.kubeconfig}  (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
