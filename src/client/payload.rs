//! Byte strings a command sends (message payloads, setting values, `meta`): given as UTF-8
//! text, as base64, or read from a file (`-` is standard input).

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use clap::Args;

use super::encoding::{parse_base64, Binary};

/// A message or app-event payload: exactly one of TEXT, `--payload-file`, `--payload-base64`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PayloadArgs {
    /// The payload as UTF-8 text.
    #[arg(value_name = "TEXT")]
    text: Option<String>,
    /// Read the payload from this file ("-" reads standard input).
    #[arg(long, value_name = "PATH")]
    payload_file: Option<PathBuf>,
    /// The payload as base64 (standard or url-safe alphabet, padding optional).
    #[arg(long, value_name = "BASE64", value_parser = parse_base64)]
    payload_base64: Option<Binary>,
}

impl PayloadArgs {
    /// The bytes to send.
    pub fn read(&self) -> anyhow::Result<Vec<u8>> {
        resolve(
            self.text.as_deref(),
            self.payload_file.as_deref(),
            self.payload_base64.as_ref(),
            "--payload-file",
        )
    }
}

/// A setting value: exactly one of VALUE, `--value-file`, `--value-base64`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ValueArgs {
    /// The value as UTF-8 text ("" for an empty value).
    #[arg(value_name = "VALUE")]
    value: Option<String>,
    /// Read the value from this file ("-" reads standard input).
    #[arg(long, value_name = "PATH")]
    value_file: Option<PathBuf>,
    /// The value as base64 (standard or url-safe alphabet, padding optional).
    #[arg(long, value_name = "BASE64", value_parser = parse_base64)]
    value_base64: Option<Binary>,
}

impl ValueArgs {
    /// The bytes to send.
    pub fn read(&self) -> anyhow::Result<Vec<u8>> {
        resolve(
            self.value.as_deref(),
            self.value_file.as_deref(),
            self.value_base64.as_ref(),
            "--value-file",
        )
    }
}

/// The optional `meta` shown to the other side (group members, or the contact we ask).
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct MetaArgs {
    /// `meta` as UTF-8 text (for example a display name).
    #[arg(long, value_name = "TEXT")]
    meta: Option<String>,
    /// `meta` as base64 (standard or url-safe alphabet, padding optional).
    #[arg(long, value_name = "BASE64", value_parser = parse_base64)]
    meta_base64: Option<Binary>,
}

impl MetaArgs {
    /// The bytes to send (empty when not given).
    pub fn bytes(&self) -> Vec<u8> {
        match (&self.meta, &self.meta_base64) {
            (Some(text), _) => text.clone().into_bytes(),
            (None, Some(binary)) => binary.0.clone(),
            (None, None) => Vec::new(),
        }
    }
}

fn resolve(
    text: Option<&str>,
    file: Option<&Path>,
    base64: Option<&Binary>,
    file_flag: &str,
) -> anyhow::Result<Vec<u8>> {
    match (text, file, base64) {
        (Some(text), _, _) => Ok(text.as_bytes().to_vec()),
        (None, Some(path), _) => read_file_or_stdin(path)
            .map_err(|e| anyhow::anyhow!("cannot read {file_flag} {}: {e}", path.display())),
        (None, None, Some(binary)) => Ok(binary.0.clone()),
        // clap's argument group makes one of the three present.
        (None, None, None) => Ok(Vec::new()),
    }
}

fn read_file_or_stdin(path: &Path) -> std::io::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().lock().read_to_end(&mut bytes)?;
        Ok(bytes)
    } else {
        std::fs::read(path)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Send {
        #[command(flatten)]
        payload: PayloadArgs,
        #[command(flatten)]
        meta: MetaArgs,
    }

    fn parse(args: &[&str]) -> Result<Send, clap::Error> {
        Send::try_parse_from(std::iter::once("send").chain(args.iter().copied()))
    }

    #[test]
    fn payload_from_text_base64_or_file() {
        assert_eq!(
            parse(&["héllo"]).unwrap().payload.read().unwrap(),
            "héllo".as_bytes()
        );
        assert_eq!(
            parse(&["--payload-base64", "AP8"])
                .unwrap()
                .payload
                .read()
                .unwrap(),
            [0u8, 255]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.bin");
        std::fs::write(&path, [1u8, 2, 3]).unwrap();
        let send = parse(&["--payload-file", path.to_str().unwrap()]).unwrap();
        assert_eq!(send.payload.read().unwrap(), [1u8, 2, 3]);
        assert_eq!(parse(&[""]).unwrap().payload.read().unwrap(), b"");
    }

    #[test]
    fn exactly_one_payload_source() {
        let none = parse(&[]).err().unwrap();
        assert_eq!(none.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let two = parse(&["text", "--payload-base64", "AP8"]).err().unwrap();
        assert_eq!(two.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn bad_base64_names_the_argument() {
        let error = parse(&["--payload-base64", "!!"]).err().unwrap();
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
        let text = error.to_string();
        assert!(text.contains("--payload-base64"), "{text}");
        assert!(text.contains("not base64 (standard or url-safe"), "{text}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_the_flag() {
        let send = parse(&["--payload-file", "/nonexistent/berty"]).unwrap();
        let error = send.payload.read().unwrap_err().to_string();
        assert!(
            error.starts_with("cannot read --payload-file /nonexistent/berty: "),
            "{error}"
        );
    }

    #[test]
    fn meta_is_optional() {
        assert_eq!(parse(&["x"]).unwrap().meta.bytes(), b"");
        assert_eq!(
            parse(&["x", "--meta", "Alice"]).unwrap().meta.bytes(),
            b"Alice"
        );
        assert_eq!(
            parse(&["x", "--meta-base64", "AP8"]).unwrap().meta.bytes(),
            [0u8, 255]
        );
        assert!(parse(&["x", "--meta", "a", "--meta-base64", "AP8"]).is_err());
    }
}
