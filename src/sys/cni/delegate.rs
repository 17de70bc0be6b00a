//! Delegation to another IPAM plugin (`"ipam": {"type": "host-local", ...}`), as the spec says:
//! the plugin is looked up in `CNI_PATH`, run with the same environment (`CNI_COMMAND` set to
//! the operation) and the same network configuration on stdin, and its result or error is
//! taken over.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::cni::spec::{CniError, Env, ErrorCode};

/// Find plugin `kind` in `CNI_PATH`.
fn find(env: &Env, kind: &str) -> Result<PathBuf, CniError> {
    if kind.is_empty() || kind.contains('/') {
        return Err(CniError::new(ErrorCode::InvalidConfig, "invalid IPAM plugin type", kind));
    }
    env.path.iter().map(|d| d.join(kind)).find(|p| p.is_file()).ok_or_else(|| {
        CniError::new(ErrorCode::InvalidConfig, format!("IPAM plugin {kind} not found in CNI_PATH"), format!("{:?}", env.path))
    })
}

/// Run IPAM plugin `kind` for `command` with `stdin`; its stdout on success.
pub fn run(env: &Env, kind: &str, command: &str, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let plugin = find(env, kind)?;
    let mut child = Command::new(&plugin)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CniError::new(ErrorCode::Io, format!("cannot run {}", plugin.display()), e))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).map_err(|e| CniError::new(ErrorCode::Io, format!("writing to {}", plugin.display()), e))?;
    }
    let out = child.wait_with_output().map_err(|e| CniError::new(ErrorCode::Io, format!("waiting for {}", plugin.display()), e))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    // The delegate's own error object, passed on with its code.
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let code = err.get("code").and_then(|c| c.as_u64()).map_or(ErrorCode::Delegate as u32, |c| c as u32);
    let msg = err.get("msg").and_then(|m| m.as_str()).unwrap_or("IPAM plugin failed");
    Err(CniError {
        code,
        msg: format!("{kind}: {msg}"),
        details: err.get("details").and_then(|d| d.as_str()).unwrap_or_default().to_string(),
    })
}
