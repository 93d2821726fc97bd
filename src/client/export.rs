//! `client export`: the account's whole data (every key, group and log) in one file, which is
//! created with mode 0600 because it holds every secret key.

use std::{
    fs::OpenOptions,
    io::{self, Write},
    path::{Path, PathBuf},
};

use clap::Args;

use super::{connection::Connector, output::print_stderr};
use crate::proto::berty_protocol::instance_export_data;

/// Where to write the export.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// File to write, created with mode 0600 (the export holds every secret key).
    #[arg(long, short = 'o', value_name = "FILE")]
    out: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

/// Calls InstanceExportData and writes the bytes to `--out`.
pub async fn run(args: ExportArgs, connector: &Connector) -> anyhow::Result<()> {
    // Checked before the call, so a typo does not cost a whole export.
    if !args.force && args.out.symlink_metadata().is_ok() {
        anyhow::bail!("{} exists (add --force to replace it)", args.out.display());
    }
    let reply = connector
        .connect()
        .await?
        .instance_export_data(instance_export_data::Request {})
        .await?
        .into_inner();
    if reply.exported_data.is_empty() {
        print_stderr("warning: the node returned an empty export");
    }
    write_secret_file(&args.out, &reply.exported_data, args.force)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
    print_stderr(&format!(
        "wrote {} bytes to {} (mode 0600)",
        reply.exported_data.len(),
        args.out.display()
    ));
    Ok(())
}

/// Writes `bytes` to a file only its owner can read. `replace` allows an existing file, whose
/// mode is tightened to 0600 before anything is written; otherwise the file must be new. A
/// failed write removes the partial file.
pub fn write_secret_file(path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let written = (|| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if written.is_err() {
        drop(file);
        let _ = std::fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_file_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.bin");
        write_secret_file(&path, b"secret", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn an_existing_file_needs_replace_and_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.bin");
        std::fs::write(&path, b"old content, longer").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let error = write_secret_file(&path, b"new", false).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"old content, longer");
        write_secret_file(&path, b"new", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
    }
}
