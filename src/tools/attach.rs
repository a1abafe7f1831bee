//! Attachments and raw source: download_attachment and read_attachment (readonly), fetch_raw (full).
//!
//! Downloads go into the configured workspace only: the directory is created 0700, files 0600,
//! created exclusively and without following symlinks, named by a short content hash plus the
//! sanitized filename.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::defs::{id_arg, input, int, object, string};
use super::ids;
use super::read::{content_limits, no_progress, resolve_id};
use super::{Args, CallCtx, Output, Registry, ToolDef, ToolError};
use crate::config::Posture;
use crate::content;
use crate::imap::OpCtx;

/// `O_NOFOLLOW` on Linux: refuse to open through a symlink at the final path component.
const O_NOFOLLOW: i32 = 0o400_000;
/// Default bytes for fetch_raw.
const RAW_DEFAULT: u64 = 1024 * 1024;
/// Longest IMAP part number accepted ("1.2.3").
const PART_MAX: usize = 64;

fn part_arg() -> Value {
    string(PART_MAX, "Attachment part number from fetch_message or list_attachments, e.g. \"2\" or \"1.3\".")
}

pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef {
            name: "read_attachment",
            title: "Read an attachment",
            description: "Extract an attachment's text through the content firewall: text/*, HTML, attached emails (message/rfc822) and calendar invitations. \
Other types answer with metadata only.",
            min_posture: Posture::Readonly,
            read_only: true,
            destructive: false,
            idempotent: true,
            input_schema: || input(json!({"id": id_arg(), "part": part_arg(), "max_chars": int(100, 1_000_000, "Longest text to return.")}), &["id", "part"]),
            output_parts: || {
                (
                    object(json!({"id": {"type": "string"}, "part": {"type": "string"}, "size": {"type": "integer"}, "truncated": {"type": "boolean"}, "extracted": {"type": "boolean"}, "sniffed_type": {"type": ["string", "null"]}}), &[]),
                    object(json!({"filename": {"type": ["string", "null"]}, "content_type": {"type": "string"}, "text": {"type": "string"}}), &[]),
                )
            },
            handler: read_attachment,
        },
        ToolDef {
            name: "download_attachment",
            title: "Save an attachment",
            description: "Save an attachment into the configured workspace directory and return its path, size, SHA-256 and type (declared and detected).",
            min_posture: Posture::Readonly,
            read_only: true,
            destructive: false,
            idempotent: true,
            input_schema: || input(json!({"id": id_arg(), "part": part_arg()}), &["id", "part"]),
            output_parts: || {
                (
                    object(json!({"id": {"type": "string"}, "part": {"type": "string"}, "path": {"type": "string"}, "size": {"type": "integer"}, "sha256": {"type": "string"}, "sniffed_type": {"type": ["string", "null"]}}), &[]),
                    object(json!({"filename": {"type": ["string", "null"]}, "content_type": {"type": "string"}}), &[]),
                )
            },
            handler: download_attachment,
        },
        ToolDef {
            name: "fetch_raw",
            title: "Read raw source",
            description: "The message's raw RFC 5322 source, bounded by max_bytes. UNSANITIZED and untrusted: prefer fetch_message.",
            min_posture: Posture::Full,
            read_only: true,
            destructive: false,
            idempotent: true,
            input_schema: || input(json!({"id": id_arg(), "max_bytes": int(1, 16 * 1024 * 1024, "Most bytes to return (default 1 MiB).")}), &["id"]),
            output_parts: || {
                (
                    object(json!({"id": {"type": "string"}, "size": {"type": "integer"}, "returned": {"type": "integer"}, "truncated": {"type": "boolean"}, "sanitized": {"type": "boolean"}}), &[]),
                    object(json!({"raw": {"type": "string"}}), &[]),
                )
            },
            handler: fetch_raw,
        },
    ]
}

/// What a part's MIME header says about it.
struct PartInfo {
    content_type: String,
    encoding: String,
    filename: Option<String>,
}

/// Parsed by the content firewall's own MIME header code, as `list_attachments` parses it.
fn part_info(mime_header: &[u8]) -> PartInfo {
    let h = content::part_header(mime_header);
    PartInfo {
        content_type: content::clean_line(&h.mime_type),
        encoding: h.encoding,
        filename: h.filename.map(|n| content::sanitize_filename(&n)),
    }
}

fn fetch_decoded(
    reg: &Registry,
    ctx: &CallCtx,
    args: &mut Args,
    tool: &str,
    max_decoded: u64,
) -> Result<(ids::MessageRef, String, PartInfo, Vec<u8>, bool), ToolError> {
    let (r, client, folder) = resolve_id(reg, tool, args)?;
    let part = args.str_req("part", PART_MAX)?;
    if part.is_empty() || part.split('.').any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 6) {
        return Err(ToolError::invalid("argument `part` must be a part number like \"2\" or \"1.3\""));
    }
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    // Base64 grows data by 4/3 plus line breaks.
    let max_encoded = max_decoded.saturating_mul(3) / 2 + 4096;
    let fetched = client.fetch_part(&op, &folder, r.uidvalidity, r.uid, &part, max_encoded)?;
    let info = part_info(&fetched.mime_header);
    let data = content::decode_part(&fetched.data, &info.encoding);
    let truncated = fetched.truncated || data.len() as u64 > max_decoded;
    Ok((r, part, info, data, truncated))
}

fn read_attachment(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let max_chars = args.u64_opt("max_chars", 100, 1_000_000)?.map(|v| v as usize);
    let (r, part, info, data, truncated) = fetch_decoded(reg, ctx, &mut args, "read_attachment", reg.limits().max_message_bytes)?;
    args.finish()?;
    let limits = content_limits(reg, max_chars);
    let (account, _) = reg.account(Some(&r.account))?;
    let cctx = super::read::content_context(account);
    let (text, findings) = content::attachment_text(&data, &info.content_type, &limits, &cctx);
    let extracted = !text.is_empty();
    let sniffed = content::sniff_type(&data);
    let id = r.encode();
    let meta_text = format!(
        "attachment part {part} of {id}: {} bytes{}{}",
        data.len(),
        if truncated { " (only the beginning was read)" } else { "" },
        if extracted { "" } else { "; no text extracted for this type" }
    );
    Ok(Output {
        meta: json!({"id": id, "part": part, "size": data.len(), "truncated": truncated, "extracted": extracted, "sniffed_type": sniffed}),
        untrusted: json!({"filename": info.filename, "content_type": info.content_type, "text": text}),
        warnings: findings,
        meta_text,
        untrusted_text: format!("Attachment: {} ({})\n\n{}", info.filename.as_deref().unwrap_or("(no name)"), info.content_type, text),
    })
}

fn workspace_dir(reg: &Registry) -> Result<PathBuf, ToolError> {
    let ws = reg
        .config()
        .workspace
        .clone()
        .ok_or_else(|| ToolError::new("workspace_not_configured", "no workspace is configured (set `workspace` in the config)"))?;
    if let Ok(meta) = std::fs::symlink_metadata(&ws) {
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(ToolError::new("io_error", "the workspace path is not a directory (or is a symbolic link); refused"));
        }
    } else {
        std::fs::create_dir_all(&ws).map_err(|e| ToolError::new("io_error", format!("cannot create the workspace: {e}")))?;
        std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ToolError::new("io_error", format!("cannot set the workspace's mode: {e}")))?;
    }
    Ok(ws)
}

fn download_attachment(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let max = reg.limits().max_attachment_bytes;
    let (r, part, info, data, truncated) = fetch_decoded(reg, ctx, &mut args, "download_attachment", max)?;
    args.finish()?;
    if truncated {
        return Err(ToolError::new(
            "limit_exceeded",
            format!("the attachment is larger than limits.max_attachment_bytes ({max} bytes); nothing was saved"),
        ));
    }
    let ws = workspace_dir(reg)?;
    let digest = Sha256::digest(&data);
    let sha = ids::to_hex(&digest);
    let base = info.filename.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "attachment.bin".into());
    let path = ws.join(format!("{}-{}", &sha[..12], base));
    let written = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(O_NOFOLLOW).open(&path);
    match written {
        Ok(mut f) => {
            f.write_all(&data).and_then(|_| f.sync_all()).map_err(|e| {
                let _ = std::fs::remove_file(&path);
                ToolError::new("io_error", format!("cannot write the attachment: {e}"))
            })?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Same name means same content hash prefix: accept it only if it really is the same file.
            let meta = std::fs::symlink_metadata(&path).map_err(|e| ToolError::new("io_error", e.to_string()))?;
            let same = meta.is_file() && std::fs::read(&path).map(|old| Sha256::digest(&old) == digest).unwrap_or(false);
            if !same {
                return Err(ToolError::new("io_error", format!("{} already exists with other content; refused", path.display())));
            }
        }
        Err(e) => return Err(ToolError::new("io_error", format!("cannot create the attachment file: {e}"))),
    }
    let sniffed = content::sniff_type(&data);
    let id = r.encode();
    let mut warnings = Vec::new();
    if let Some(s) = sniffed {
        if !info.content_type.eq_ignore_ascii_case(s) && info.content_type != "application/octet-stream" {
            warnings.push(content::Finding {
                code: "attachment_type_mismatch",
                severity: content::Severity::Warning,
                location: format!("part {part}"),
                detail: format!("declared {} but the content looks like {s}", info.content_type),
            });
        }
    }
    Ok(Output {
        meta: json!({"id": id, "part": part, "path": path.to_string_lossy(), "size": data.len(), "sha256": sha, "sniffed_type": sniffed}),
        untrusted: json!({"filename": info.filename, "content_type": info.content_type}),
        warnings,
        meta_text: format!(
            "saved part {part} of {id} to {} ({} bytes, sha256 {sha}, detected type {})",
            path.display(),
            data.len(),
            sniffed.unwrap_or("unknown")
        ),
        untrusted_text: format!(
            "declared filename: {}\ndeclared type: {}",
            info.filename.as_deref().unwrap_or("(none)"),
            info.content_type
        ),
    })
}

fn fetch_raw(reg: &Registry, ctx: &CallCtx, mut args: Args) -> Result<Output, ToolError> {
    let (r, client, folder) = resolve_id(reg, "fetch_raw", &mut args)?;
    let max = args.u64_opt("max_bytes", 1, 16 * 1024 * 1024)?.unwrap_or(RAW_DEFAULT).min(reg.limits().max_message_bytes);
    args.finish()?;
    let op = OpCtx { cancel: ctx.cancel, progress: &no_progress };
    let msg = client.fetch_raw(&op, &folder, r.uidvalidity, r.uid, max)?;
    let text = String::from_utf8_lossy(&msg.raw).into_owned();
    let id = r.encode();
    Ok(Output {
        meta: json!({"id": id, "size": msg.size, "returned": msg.raw.len(), "truncated": msg.truncated, "sanitized": false}),
        untrusted: json!({"raw": text}),
        warnings: vec![],
        meta_text: format!(
            "raw source of {id}: {} of {} bytes{}. UNSANITIZED: hidden text, look-alike characters and injected instructions are all still there.",
            msg.raw.len(),
            msg.size,
            if msg.truncated { " (truncated)" } else { "" }
        ),
        untrusted_text: text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_info_decodes_like_list_attachments() {
        let h = b"Content-Type: APPLICATION/PDF; name=\"x.pdf\"\r\nContent-Transfer-Encoding: BASE64\r\nContent-Disposition: attachment;\r\n filename*=utf-8''Rechnung%20M%C3%A4rz.pdf\r\n\r\n";
        let i = part_info(h);
        assert_eq!(
            (i.content_type.as_str(), i.encoding.as_str(), i.filename.as_deref()),
            ("application/pdf", "base64", Some("Rechnung März.pdf"))
        );
        let i = part_info(b"Content-Type: text/plain; name=\"=?utf-8?q?caf=C3=A9.txt?=\"\r\n\r\n");
        assert_eq!((i.content_type.as_str(), i.encoding.as_str(), i.filename.as_deref()), ("text/plain", "7bit", Some("café.txt")));
        let i = part_info(b"");
        assert_eq!((i.content_type.as_str(), i.filename), ("text/plain", None));
    }

    /// mailparse's header decoding took minutes on this (cubic); ours is linear.
    #[test]
    fn part_info_is_linear_on_hostile_encoded_words() {
        let mut h = b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"".to_vec();
        for _ in 0..9_000 {
            h.extend_from_slice(b" =?a?=x");
        }
        h.extend_from_slice(b"\"\r\n\r\n");
        let i = part_info(&h);
        assert_eq!(i.content_type, "application/octet-stream");
        assert!(i.filename.is_some_and(|f| f.len() <= 255));
    }
}
