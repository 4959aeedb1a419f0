//! The runtime on the Kubernetes path: a CRI client → containerd's CRI
//! plugin → the runc v2 shim → the runtime under test, configured as the
//! RuntimeClass handler `bulkhead` (`runtime_type = io.containerd.runc.v2`,
//! `BinaryName` = the runtime). The client speaks the CRI gRPC API (the
//! calls kubelet and crictl make) over a private containerd's socket;
//! crictl itself is not packaged in Debian 12.
//!
//! Each test runs its own containerd (private root, state, socket, CNI
//! config, runtime `--root` and cgroup parent) with pods on a private CNI
//! bridge (containernetworking-plugins' `bridge` with `host-local` IPAM
//! keeping its state in the test's directory). Images are built from the
//! shared test rootfs as OCI archives and imported with `ctr -n k8s.io
//! images import`. A missing containerd, ctr, shim or CNI plugin skips the
//! tests with a printed reason.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::containerd::{self as containerd, Containerd};
use common::{rootfs, runtime};
use k8s_cri::v1::{self as cri, runtime_service_client::RuntimeServiceClient};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tonic::transport::{Channel, Endpoint, Uri};

const PAUSE_IMAGE: &str = "docker.io/library/bht-pause:1";
const BUSY_IMAGE: &str = "docker.io/library/bht-busybox:1";
const CNI_BIN: &str = "/usr/lib/cni";
/// The namespace the CRI plugin keeps its containers in.
const K8S_NS: &str = "k8s.io";

/// A private containerd with the CRI plugin and the `bulkhead` handler,
/// and a CRI client connected to it; stopped and cleaned on drop.
struct Cri {
    containerd: Containerd,
    tokio: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    /// Unique tag of this instance (bridge, network, cgroup parent).
    tag: String,
}

impl Cri {
    fn new() -> Option<Cri> {
        if !containerd::installed() {
            return None;
        }
        for plugin in ["bridge", "host-local", "loopback"] {
            if !Path::new(CNI_BIN).join(plugin).is_file() {
                eprintln!(
                    "skipped: CNI plugin {CNI_BIN}/{plugin} is missing \
                     (containernetworking-plugins, scripts/install-deps.sh)"
                );
                return None;
            }
        }
        let n = std::process::id() as u64 * 1000 + {
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0);
            N.fetch_add(1, Ordering::Relaxed)
        };
        let tag = format!("bhcri{:x}", n & 0xff_ffff);
        let containerd = Containerd::with_cri("bh-cri-", K8S_NS, |dir| {
            let d = dir.display();
            let cni = dir.join("cni");
            std::fs::create_dir(&cni).unwrap();
            // A /24 in 10.231.0.0/16 per instance, so parallel tests' bridges
            // never share addresses; nothing is routed or sent there.
            let net = json!({
                "cniVersion": "0.4.0",
                "name": tag,
                "plugins": [{
                    "type": "bridge",
                    "bridge": tag,
                    "isGateway": false,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": format!("10.231.{}.0/24", n % 250)}]],
                        "dataDir": format!("{d}/ipam"),
                    },
                }],
            });
            std::fs::write(cni.join("10-bht.conflist"), net.to_string()).unwrap();
            // The `bulkhead` handler: the runc v2 shim with the runtime under
            // test as its binary and a private `--root`.
            format!(
                "[plugins.\"io.containerd.grpc.v1.cri\"]\n\
                 \x20 sandbox_image = \"{PAUSE_IMAGE}\"\n\
                 \x20 stream_server_address = \"127.0.0.1\"\n\
                 \x20 stream_server_port = \"0\"\n\
                 \x20 disable_apparmor = true\n\
                 \x20 restrict_oom_score_adj = true\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
                 \x20 snapshotter = \"native\"\n\
                 \x20 default_runtime_name = \"bulkhead\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.bulkhead]\n\
                 \x20 runtime_type = \"io.containerd.runc.v2\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.bulkhead.options]\n\
                 \x20 BinaryName = \"{rt}\"\n\
                 \x20 Root = \"{d}/runtime-root\"\n\
                 \x20 SystemdCgroup = false\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
                 \x20 bin_dir = \"{CNI_BIN}\"\n\
                 \x20 conf_dir = \"{cni}\"\n\
                 \x20 max_conf_num = 1\n",
                rt = runtime().display(),
                cni = cni.display(),
            )
        });
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sock = containerd.socket();
        let client = common::wait_for("containerd's CRI socket", Duration::from_secs(30), || {
            if !sock.exists() {
                return None;
            }
            let sock = sock.clone();
            let channel = tokio
                .block_on(
                    Endpoint::try_from("http://[::]")
                        .unwrap()
                        .connect_with_connector(tower::service_fn(move |_: Uri| {
                            let sock = sock.clone();
                            async move {
                                let s = tokio::net::UnixStream::connect(sock).await?;
                                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                            }
                        })),
                )
                .ok()?;
            let mut client = RuntimeServiceClient::new(channel);
            tokio
                .block_on(client.version(cri::VersionRequest::default()))
                .ok()?;
            Some(client)
        });
        let c = Cri {
            containerd,
            tokio,
            client,
            tag,
        };
        c.import_image(PAUSE_IMAGE, &["/bin/sleep", "2147483647"]);
        c.import_image(BUSY_IMAGE, &["/bin/sh"]);
        Some(c)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.containerd.path(name)
    }

    /// Writes the shared test rootfs as a one-layer OCI archive named
    /// `name` (with `entrypoint`) and imports it into the CRI namespace.
    fn import_image(&self, name: &str, entrypoint: &[&str]) {
        let layout = self.path(&format!("oci-{}", name.replace(['/', ':'], "_")));
        let blobs = layout.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let layer = layout.join("layer.tar");
        let out = Command::new("tar")
            .arg("-C")
            .arg(rootfs())
            .arg("-cf")
            .arg(&layer)
            .arg(".")
            .output()
            .expect("tar");
        assert!(out.status.success(), "tar: {out:?}");
        let layer_bytes = std::fs::read(&layer).unwrap();
        std::fs::remove_file(&layer).unwrap();
        let blob = |bytes: &[u8]| -> (String, usize) {
            let digest = hex::encode(Sha256::digest(bytes));
            std::fs::write(blobs.join(&digest), bytes).unwrap();
            (format!("sha256:{digest}"), bytes.len())
        };
        let (layer_digest, layer_size) = blob(&layer_bytes);
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": entrypoint,
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        });
        let (config_digest, config_size) = blob(config.to_string().as_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer_size,
            }],
        });
        let (manifest_digest, manifest_size) = blob(manifest.to_string().as_bytes());
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"io.containerd.image.name": name},
            }],
        });
        std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
        std::fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let archive = PathBuf::from(format!("{}.tar", layout.display()));
        let out = Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .args(["oci-layout", "index.json", "blobs"])
            .output()
            .expect("tar");
        assert!(out.status.success(), "tar: {out:?}");
        std::fs::remove_dir_all(&layout).unwrap();
        self.containerd.import_archive(&archive);
        std::fs::remove_file(&archive).unwrap();
    }

    fn call<T>(
        &self,
        f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        match self.tokio.block_on(f) {
            Ok(r) => r.into_inner(),
            Err(e) => panic!("CRI call failed: {e}\n{}", self.log_tail()),
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn client(&self) -> RuntimeServiceClient<Channel> {
        self.client.clone()
    }

    /// The kubelet-style cgroup parent of this instance's pods.
    fn cgroup_parent(&self, uid: &str) -> String {
        format!("/{}/pod{uid}", self.tag)
    }

    fn pod_config(
        &self,
        name: &str,
        security: Option<cri::LinuxSandboxSecurityContext>,
    ) -> cri::PodSandboxConfig {
        let uid = format!("{}-{name}", self.tag);
        let logs = self.path(&format!("logs-{name}"));
        std::fs::create_dir_all(&logs).unwrap();
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: uid.clone(),
                namespace: "bht".into(),
                attempt: 0,
            }),
            hostname: format!("{name}-host"),
            log_directory: logs.display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent(&uid),
                security_context: Some(security.unwrap_or(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(kubelet_namespaces()),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run_pod(&self, config: &cri::PodSandboxConfig) -> String {
        self.call(self.client().run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: "bulkhead".into(),
        }))
        .pod_sandbox_id
    }

    fn create_container(
        &self,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        config: cri::ContainerConfig,
    ) -> String {
        self.call(self.client().create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        }))
        .container_id
    }

    /// CreateContainer and StartContainer; the container's id.
    fn create_and_start(
        &self,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        config: cri::ContainerConfig,
    ) -> String {
        let id = self.create_container(pod, pod_config, config);
        self.call(self.client().start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        }));
        id
    }

    fn exec_sync(&self, id: &str, cmd: &[&str]) -> cri::ExecSyncResponse {
        self.call(self.client().exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 20,
        }))
    }

    fn container_status(&self, id: &str) -> (cri::ContainerStatus, Value) {
        let r = self.call(self.client().container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        }));
        (r.status.unwrap(), info_json(&r.info))
    }

    fn pod_status(&self, id: &str) -> (cri::PodSandboxStatus, Value) {
        let r = self.call(
            self.client()
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: id.into(),
                    verbose: true,
                }),
        );
        (r.status.unwrap(), info_json(&r.info))
    }

    fn stop_and_remove_container(&self, id: &str) {
        self.call(self.client().stop_container(cri::StopContainerRequest {
            container_id: id.into(),
            timeout: 2,
        }));
        let (status, _) = self.container_status(id);
        assert_eq!(
            status.state,
            cri::ContainerState::ContainerExited as i32,
            "{status:?}"
        );
        self.call(self.client().remove_container(cri::RemoveContainerRequest {
            container_id: id.into(),
        }));
    }

    fn stop_and_remove_pod(&self, id: &str) {
        self.call(self.client().stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        }));
        let (status, _) = self.pod_status(id);
        assert_eq!(
            status.state,
            cri::PodSandboxState::SandboxNotready as i32,
            "{status:?}"
        );
        self.call(
            self.client()
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: id.into(),
                }),
        );
    }

    /// What the runtime keeps under the shim's `--root` (one directory per
    /// live container); empty once every pod is removed.
    fn runtime_state(&self) -> Vec<String> {
        std::fs::read_dir(self.path("runtime-root").join(K8S_NS))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // `.cache`: compiled seccomp filters shared by the root.
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Cgroup directories below this instance's cgroup parent, in any
    /// hierarchy.
    fn cgroups_left(&self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for h in cgroup_hierarchies() {
            let top = h.join(&self.tag);
            if let Ok(pods) = std::fs::read_dir(&top) {
                for pod in pods.flatten().filter(|e| e.path().is_dir()) {
                    if let Ok(rd) = std::fs::read_dir(pod.path()) {
                        left.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
                    }
                }
            }
        }
        left
    }

    /// Mounts under this instance's directory other than those containerd
    /// itself keeps while it runs.
    fn mounts_left(&self) -> Vec<String> {
        let needle = self.containerd.dir().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Asserts that every pod is gone without a trace.
    fn assert_clean(&self) {
        assert_eq!(
            self.runtime_state(),
            Vec::<String>::new(),
            "runtime state left"
        );
        assert_eq!(self.cgroups_left(), Vec::<PathBuf>::new(), "cgroups left");
        assert_eq!(self.mounts_left(), Vec::<String>::new(), "mounts left");
        let pods = self.call(
            self.client()
                .list_pod_sandbox(cri::ListPodSandboxRequest::default()),
        );
        assert!(pods.items.is_empty(), "{:?}", pods.items);
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        // Pods a failed test left: stop and remove them so shims exit.
        let mut client = self.client.clone();
        if let Ok(pods) = self
            .tokio
            .block_on(client.list_pod_sandbox(cri::ListPodSandboxRequest::default()))
        {
            for p in pods.into_inner().items {
                let _ = self
                    .tokio
                    .block_on(client.stop_pod_sandbox(cri::StopPodSandboxRequest {
                        pod_sandbox_id: p.id.clone(),
                    }));
                let _ =
                    self.tokio
                        .block_on(client.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                            pod_sandbox_id: p.id,
                        }));
            }
        }
        let left = self.containerd.stop();
        let _ = Command::new("ip")
            .args(["link", "del", &self.tag])
            .stderr(Stdio::null())
            .status();
        // The pod-level cgroups (kubelet's job) and this instance's parent.
        for h in cgroup_hierarchies() {
            let top = h.join(&self.tag);
            if let Ok(pods) = std::fs::read_dir(&top) {
                for pod in pods.flatten() {
                    let _ = std::fs::remove_dir(pod.path());
                }
            }
            let _ = std::fs::remove_dir(&top);
        }
        if !std::thread::panicking() {
            assert!(left.is_empty(), "containerd left mounts behind: {left:#?}");
        }
    }
}

/// What kubelet asks for without `shareProcessNamespace` or host
/// namespaces: the pod's network and IPC, the container's own PID
/// namespace (the CRI's zero value, POD, would share the pause's).
fn kubelet_namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// The v1 memory cgroup of `pid`, from /proc/<pid>/cgroup.
fn memory_cgroup(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .expect("memory line in /proc/<pid>/cgroup")
}

/// `/sys/fs/cgroup` and every hierarchy mounted below it.
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut all = vec![root.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(root) {
        all.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    all
}

/// The `info` JSON of a verbose status response.
fn info_json(info: &HashMap<String, String>) -> Value {
    info.get("info")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

fn container_config(name: &str, command: &[&str]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: BUSY_IMAGE.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ns(pid: i64, name: &str) -> u64 {
    common::ns_inode(&pid.to_string(), name).unwrap_or_else(|| panic!("no /proc/{pid}/ns/{name}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A streaming `Exec` through the CRI's streaming server, as kubectl does:
/// the URL from the `Exec` call, a WebSocket with the `v4.channel.k8s.io`
/// protocol (each message: a channel byte, then data; 1 stdout, 2 stderr,
/// 3 the final status). Returns (stdout, stderr, status JSON).
fn stream_exec(c: &Cri, id: &str, cmd: &[&str], tty: bool) -> (String, String, Value) {
    use tungstenite::client::IntoClientRequest;
    let r = c.call(c.client().exec(cri::ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin: false,
        stdout: true,
        stderr: !tty,
    }));
    let url = r.url.replacen("http://", "ws://", 1);
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    let (mut ws, _) = tungstenite::connect(req).unwrap_or_else(|e| panic!("connect {url}: {e}"));
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(common::cmd_timeout())).unwrap();
    }
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Binary(b)) if !b.is_empty() => match b[0] {
                1 => out.extend_from_slice(&b[1..]),
                2 => err.extend_from_slice(&b[1..]),
                3 => status.extend_from_slice(&b[1..]),
                _ => {}
            },
            Ok(tungstenite::Message::Close(_)) => break,
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => break,
            Err(e) => panic!("exec stream {url}: {e}"),
        }
    }
    let status = serde_json::from_slice(&status).unwrap_or(Value::Null);
    (text(&out), text(&err), status)
}

/// The exit code in a channel.k8s.io status (0 for "Success").
fn exit_code(status: &Value) -> i64 {
    if status["status"] == "Success" {
        return 0;
    }
    status["details"]["causes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["reason"] == "ExitCode"))
        .and_then(|c| c["message"].as_str())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no exit code in {status}"))
}

/// Run a pod and a container in it, exec into it, check that it shares the
/// pod's namespaces and /dev/shm, update its resources, then stop and
/// remove both, leaving nothing behind.
#[test]
fn cri_pod_lifecycle_exec_and_shared_namespaces() {
    require_root!();
    let Some(c) = Cri::new() else { return };
    let pod_config = c.pod_config("web", None);
    let pod = c.run_pod(&pod_config);
    let (pod_status, pod_info) = c.pod_status(&pod);
    assert_eq!(pod_status.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(pod_info["runtimeHandler"], "bulkhead", "{pod_info}");
    let pause_pid = pod_info["pid"].as_i64().expect("pause pid");
    let pod_ip = pod_status
        .network
        .as_ref()
        .map(|n| n.ip.clone())
        .unwrap_or_default();
    assert!(pod_ip.starts_with("10.231."), "pod ip {pod_ip:?}");

    let id = c.create_and_start(
        &pod,
        &pod_config,
        container_config("app", &["/bin/sleep", "2147483647"]),
    );
    let (status, info) = c.container_status(&id);
    assert_eq!(
        status.state,
        cri::ContainerState::ContainerRunning as i32,
        "{status:?}"
    );
    let pid = info["pid"].as_i64().expect("container pid");
    assert_ne!(pid, pause_pid);
    // The runtime's own view agrees.
    let state = common::rt(&c.path("runtime-root").join(K8S_NS), &["state", &id]);
    state.ok();
    let state: Value = serde_json::from_str(&state.stdout).unwrap();
    assert_eq!(state["status"], "running");
    assert_eq!(state["pid"], pid);

    // ExecSync: output, exit code.
    let r = c.exec_sync(&id, &["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (text(&r.stdout), text(&r.stderr), r.exit_code),
        ("out\n".into(), "err\n".into(), 3)
    );
    // Streaming Exec (kubectl exec) without a terminal: stdout and stderr
    // on their channels, the exit code in the final status.
    let (out, err, status) = stream_exec(&c, &id, &["/bin/sh", "-c", "echo e >&2; tty"], false);
    assert_eq!((out.as_str(), err.as_str()), ("not a tty\n", "e\n"));
    assert_eq!(exit_code(&status), 1, "{status}");
    let r = c.exec_sync(&id, &["/bin/hostname"]);
    assert_eq!(text(&r.stdout), "web-host\n");

    // Joined the pod's network, ipc and uts namespaces; own pid and mount.
    for shared in ["net", "ipc", "uts"] {
        assert_eq!(ns(pid, shared), ns(pause_pid, shared), "{shared} namespace");
    }
    for own in ["pid", "mnt"] {
        assert_ne!(ns(pid, own), ns(pause_pid, own), "{own} namespace");
    }
    assert_ne!(ns(pid, "net"), ns(std::process::id() as i64, "net"));
    let r = c.exec_sync(&id, &["/bin/sh", "-c", "ip -4 -o addr show eth0"]);
    assert!(text(&r.stdout).contains(&pod_ip), "{r:?}");
    // /dev/shm is the sandbox's.
    let r = c.exec_sync(&id, &["/bin/sh", "-c", "echo shared > /dev/shm/bht-marker"]);
    assert_eq!(r.exit_code, 0, "{r:?}");
    let seen = std::fs::read_to_string(format!("/proc/{pause_pid}/root/dev/shm/bht-marker"));
    assert_eq!(seen.ok().as_deref(), Some("shared\n"));

    // UpdateContainerResources reaches the container's cgroup.
    c.call(
        c.client()
            .update_container_resources(cri::UpdateContainerResourcesRequest {
                container_id: id.clone(),
                linux: Some(cri::LinuxContainerResources {
                    memory_limit_in_bytes: 64 << 20,
                    cpu_shares: 512,
                    ..Default::default()
                }),
                ..Default::default()
            }),
    );
    let mem = Path::new("/sys/fs/cgroup/memory").join(memory_cgroup(pid).trim_start_matches('/'));
    assert!(mem.ends_with(&id), "{}", mem.display());
    let limit = std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (64u64 << 20).to_string());

    c.stop_and_remove_container(&id);
    c.stop_and_remove_pod(&pod);
    c.assert_clean();
}

/// A pod whose container runs as a user with a read-only root, no
/// capabilities and the runtime's default seccomp profile: what the
/// process sees matches.
#[test]
fn cri_security_context_reaches_the_process() {
    require_root!();
    let Some(c) = Cri::new() else { return };
    let pod_config = c.pod_config("locked", None);
    let pod = c.run_pod(&pod_config);
    let mut config = container_config("app", &["/bin/sleep", "2147483647"]);
    config.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            namespace_options: Some(kubelet_namespaces()),
            run_as_user: Some(cri::Int64Value { value: 1000 }),
            run_as_group: Some(cri::Int64Value { value: 1000 }),
            readonly_rootfs: true,
            no_new_privs: true,
            capabilities: Some(cri::Capability {
                drop_capabilities: vec!["ALL".into()],
                ..Default::default()
            }),
            seccomp: Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = c.create_and_start(&pod, &pod_config, config);
    let (_, info) = c.container_status(&id);
    let pid = info["pid"].as_i64().expect("container pid");
    // The container's process, seen from the host.
    assert_eq!(
        common::proc_status_field(pid, "Uid")
            .split_whitespace()
            .next(),
        Some("1000")
    );
    assert_eq!(
        common::proc_status_field(pid, "Gid")
            .split_whitespace()
            .next(),
        Some("1000")
    );
    assert_eq!(common::proc_status_field(pid, "CapEff"), "0000000000000000");
    assert_eq!(common::proc_status_field(pid, "CapBnd"), "0000000000000000");
    assert_eq!(common::proc_status_field(pid, "Seccomp"), "2");
    assert_eq!(common::proc_status_field(pid, "NoNewPrivs"), "1");
    // And an exec'd process, seen from inside.
    let r = c.exec_sync(&id, &["/bin/id"]);
    assert!(
        text(&r.stdout).starts_with("uid=1000(tester) gid=1000(tester)"),
        "{r:?}"
    );
    let r = c.exec_sync(
        &id,
        &[
            "/bin/sh",
            "-c",
            "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status",
        ],
    );
    let out = text(&r.stdout);
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    let r = c.exec_sync(&id, &["/bin/touch", "/bht-write"]);
    assert_ne!(r.exit_code, 0, "{r:?}");
    assert!(text(&r.stderr).contains("Read-only file system"), "{r:?}");
    // The default profile denies what it should, e.g. unshare(CLONE_NEWUSER)
    // needs no capability but is not in the allow list without CAP_SYS_ADMIN.
    let r = c.exec_sync(&id, &["/bin/unshare", "-U", "/bin/true"]);
    assert_ne!(r.exit_code, 0, "{r:?}");

    c.stop_and_remove_container(&id);
    c.stop_and_remove_pod(&pod);
    c.assert_clean();
}

/// kubelet's systemd-style parent (`*.slice`) makes containerd pass
/// `slice:cri-containerd:id` as cgroupsPath even with SystemdCgroup off:
/// the runtime must still place the container in a cgroup it then removes.
#[test]
fn cri_systemd_style_cgroup_parent_with_cgroupfs() {
    require_root!();
    let Some(c) = Cri::new() else { return };
    let mut pod_config = c.pod_config("sliced", None);
    let slice = format!("kubepods-besteffort-pod{}.slice", c.tag);
    pod_config.linux.as_mut().unwrap().cgroup_parent = slice.clone();
    let pod = c.run_pod(&pod_config);
    let id = c.create_and_start(
        &pod,
        &pod_config,
        container_config("app", &["/bin/sleep", "2147483647"]),
    );
    let (_, info) = c.container_status(&id);
    let pid = info["pid"].as_i64().expect("container pid");
    let mem = memory_cgroup(pid);
    assert!(
        mem.contains(&id),
        "memory cgroup {mem} does not name the container"
    );
    assert!(
        mem.contains(&c.tag),
        "memory cgroup {mem} is not below the pod's parent"
    );
    c.stop_and_remove_container(&id);
    c.stop_and_remove_pod(&pod);
    assert!(
        !Path::new("/sys/fs/cgroup/memory")
            .join(mem.trim_start_matches('/'))
            .exists(),
        "{mem} left"
    );
    c.assert_clean();
    // The slices above the pod's (kubelet's, or systemd's, job).
    for h in cgroup_hierarchies() {
        let kubepods = h.join("kubepods.slice");
        let _ = std::fs::remove_dir(kubepods.join("kubepods-besteffort.slice").join(&slice));
        let _ = std::fs::remove_dir(kubepods.join("kubepods-besteffort.slice"));
        let _ = std::fs::remove_dir(kubepods);
    }
}
