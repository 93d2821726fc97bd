//! Starting the real `berty-node` binary on port 0 and talking to it.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// The `berty-node` binary to run: this build's, or `BERTY_NODE_BIN` (to time two builds
/// against each other with the same benchmark).
pub fn node_binary() -> std::path::PathBuf {
    std::env::var_os("BERTY_NODE_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_berty-node").into())
}

/// How long a node may take to print its addresses.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A `berty-node serve` child process and the addresses it printed.
pub struct NodeProcess {
    /// The child process.
    pub child: Child,
    /// Printed `peer_id`.
    pub peer_id: String,
    /// Printed `grpc_listen`.
    pub grpc_addr: SocketAddr,
    /// Printed `admin_listen`.
    pub admin_addr: SocketAddr,
    /// Printed `p2p_listen` lines.
    pub p2p_addrs: Vec<String>,
}

impl NodeProcess {
    /// Runs `berty-node serve` with `args` and `env`, and waits until it printed its addresses.
    pub async fn spawn(args: &[&str], env: &HashMap<String, String>, cwd: &Path) -> Self {
        Self::spawn_logging_to(args, env, cwd, Stdio::inherit()).await
    }

    /// [`spawn`](Self::spawn), with the node's log (stderr) going to `log`.
    pub async fn spawn_logging_to(
        args: &[&str],
        env: &HashMap<String, String>,
        cwd: &Path,
        log: Stdio,
    ) -> Self {
        let mut command = Command::new(node_binary());
        command
            .arg("serve")
            .args(args)
            .current_dir(cwd)
            .env_remove("RUST_LOG")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = command.spawn().expect("start berty-node");
        let stdout = child.stdout.take().expect("stdout");
        let stdout = tokio::process::ChildStdout::from_std(stdout).expect("async stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut printed: HashMap<String, Vec<String>> = HashMap::new();
        let read = async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some((key, value)) = line.split_once(' ') {
                    printed
                        .entry(key.to_string())
                        .or_default()
                        .push(value.to_string());
                }
                if line.starts_with("admin_listen ") {
                    return true;
                }
            }
            false
        };
        let complete = tokio::time::timeout(START_TIMEOUT, read)
            .await
            .expect("node printed its addresses in time");
        assert!(
            complete,
            "node exited before printing its addresses: {printed:?}"
        );
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let one = |key: &str| printed[key][0].clone();
        Self {
            peer_id: one("peer_id"),
            grpc_addr: one("grpc_listen").parse().expect("grpc addr"),
            admin_addr: one("admin_listen").parse().expect("admin addr"),
            p2p_addrs: printed.get("p2p_listen").cloned().unwrap_or_default(),
            child,
        }
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the child with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the child to exit, at most `timeout`.
    pub async fn wait(mut self, timeout: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait child") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node did not exit within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A gRPC client connected to the node.
    pub async fn grpc(
        &self,
    ) -> berty_node::proto::berty_protocol::protocol_service_client::ProtocolServiceClient<
        tonic::transport::Channel,
    > {
        berty_node::proto::berty_protocol::protocol_service_client::ProtocolServiceClient::connect(
            format!("http://{}", self.grpc_addr),
        )
        .await
        .expect("connect gRPC")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `berty-node serve` with `args` and `env` until it exits on its own (at most
/// `timeout`, then it is killed and this panics); returns its exit status and stderr.
pub async fn run_to_exit(
    args: &[&str],
    env: &HashMap<String, String>,
    cwd: &Path,
    timeout: Duration,
) -> (ExitStatus, String) {
    let child = tokio::process::Command::new(node_binary())
        .arg("serve")
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start berty-node");
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("node did not exit within {timeout:?}"))
        .expect("wait for berty-node");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A minimal HTTP/1.1 GET: returns the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    http_request(addr, "GET", path, token, None).await
}

/// A minimal HTTP/1.1 POST with an optional JSON body: returns the status code and the body.
#[allow(dead_code)]
pub async fn http_post(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> (u16, String) {
    http_request(addr, "POST", path, token, json).await
}

/// A minimal HTTP/1.1 request with any method: returns the status code and the body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect admin");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = json.unwrap_or_default();
    let content = if json.is_some() {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    } else {
        "Content-Length: 0\r\n".to_string()
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}{content}Connection: close\r\n\r\n{body}"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
