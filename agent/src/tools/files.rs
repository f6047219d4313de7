//! The file tools: read_file, write_file, edit_file and list_dir, each one sandboxd call on a
//! path inside the workspace, logged as operators grep for them.

use crate::text::{count, count_as, thousands};
use crate::tools::context::{arg, err, num, ok, Ctx, Output};
use nanobot_proto::pb::{EditFileRequest, ListDirRequest, ReadFileRequest, WriteFileRequest};
use serde_json::Value;

pub async fn read_file(ctx: &mut Ctx, args: &Value) -> Result<Output, Output> {
    let path = arg(args, "path")?.to_string();
    let req_offset = num(args, "offset")?;
    let req = ReadFileRequest {
        workspace: ctx.ws(),
        path: path.clone(),
        offset: req_offset,
        limit: num(args, "limit")?,
    };
    match ctx.client.read_file(req).await {
        Ok(r) => {
            let r = r.into_inner();
            ctx.log.line("INFO", &format!("read_file path={path}"));
            let mut text = r.content;
            let note = if r.truncated {
                Some(r.note)
            } else {
                window_note(&text, req_offset, r.total_lines)
            };
            if let Some(note) = note {
                let sep = if text.is_empty() {
                    ""
                } else if text.ends_with('\n') {
                    "\n"
                } else {
                    "\n\n"
                };
                text.push_str(&format!("{sep}{note}"));
            }
            Ok(ok(text))
        }
        Err(st) => {
            ctx.log_status(&format!("read_file path={path}"), &st);
            Err(err(crate::sandbox::drain::words(&st)))
        }
    }
}

/// What a read that stops before the end of the file (a `limit`) says: which lines were shown of
/// how many and the offset to read on with; an empty file says so, rather than showing nothing.
/// `content` is the window the daemon sent (whole lines), `offset` the one asked for (0 or 1 is
/// the first line).
fn window_note(content: &str, offset: u32, total_lines: u32) -> Option<String> {
    if total_lines == 0 {
        return Some("(empty file)".into());
    }
    let shown = content.matches('\n').count() as u64 + u64::from(!content.ends_with('\n'));
    if content.is_empty() || shown == 0 {
        return None;
    }
    let first = u64::from(offset.max(1));
    let last = first + shown - 1;
    let total = u64::from(total_lines);
    if last >= total {
        return None;
    }
    let span = if first == last {
        format!("line {}", thousands(first))
    } else {
        format!("lines {}-{}", thousands(first), thousands(last))
    };
    Some(format!(
        "[showing {span} of {}; read on with offset={}]",
        thousands(total),
        last + 1
    ))
}

pub async fn write_file(ctx: &mut Ctx, args: &Value) -> Result<Output, Output> {
    let path = arg(args, "path")?.to_string();
    let content = arg(args, "content")?.to_string();
    let req = WriteFileRequest {
        workspace: ctx.ws(),
        path: path.clone(),
        content,
    };
    match ctx.client.write_file(req).await {
        Ok(r) => {
            let r = r.into_inner();
            ctx.log.line(
                "INFO",
                &format!("write_file path={path} bytes={}", r.bytes_written),
            );
            Ok(ok(format!(
                "Successfully wrote {} to {path}",
                count(r.bytes_written, "byte")
            )))
        }
        Err(st) => {
            ctx.log_status(&format!("write_file path={path}"), &st);
            Err(err(crate::sandbox::drain::words(&st)))
        }
    }
}

pub async fn edit_file(ctx: &mut Ctx, args: &Value) -> Result<Output, Output> {
    let path = arg(args, "path")?.to_string();
    let req = EditFileRequest {
        workspace: ctx.ws(),
        path: path.clone(),
        old_text: arg(args, "old_text")?.to_string(),
        new_text: arg(args, "new_text")?.to_string(),
    };
    match ctx.client.edit_file(req).await {
        Ok(_) => {
            ctx.log.line("INFO", &format!("edit_file path={path}"));
            Ok(ok(format!("Successfully edited {path}")))
        }
        Err(st) => {
            ctx.log_status(&format!("edit_file path={path}"), &st);
            Err(err(crate::sandbox::drain::words(&st)))
        }
    }
}

pub async fn list_dir(ctx: &mut Ctx, args: &Value) -> Result<Output, Output> {
    let path = arg(args, "path")?.to_string();
    let req = ListDirRequest {
        workspace: ctx.ws(),
        path: path.clone(),
    };
    match ctx.client.list_dir(req).await {
        Ok(r) => {
            let r = r.into_inner();
            ctx.log.line("INFO", &format!("list_dir path={path}"));
            if r.entries.is_empty() {
                return Ok(ok(format!("Directory {path} is empty")));
            }
            let mut lines: Vec<String> = r
                .entries
                .iter()
                .map(|e| {
                    let icon = if e.is_dir { "📁" } else { "📄" };
                    format!("{icon} {}", e.name)
                })
                .collect();
            if r.truncated {
                let more = u64::from(r.total).saturating_sub(r.entries.len() as u64);
                lines.push(format!(
                    "... ({} not shown)",
                    count_as(more, "more entry", "more entries")
                ));
            }
            Ok(ok(lines.join("\n")))
        }
        Err(st) => {
            ctx.log_status(&format!("list_dir path={path}"), &st);
            Err(err(crate::sandbox::drain::words(&st)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_short_of_the_end_says_how_to_read_on() {
        // The review's case: a 10-line file, limit 2.
        assert_eq!(
            window_note("1\n2\n", 0, 10).as_deref(),
            Some("[showing lines 1-2 of 10; read on with offset=3]")
        );
        assert_eq!(
            window_note("5\n", 5, 10).as_deref(),
            Some("[showing line 5 of 10; read on with offset=6]")
        );
        assert_eq!(
            window_note("x\ny\n", 1_199, 17_957).as_deref(),
            Some("[showing lines 1,199-1,200 of 17,957; read on with offset=1201]")
        );
        // Up to the end: nothing to add, with or without a final newline.
        assert_eq!(window_note("9\n10\n", 9, 10), None);
        assert_eq!(window_note("9\n10", 9, 10), None);
        assert_eq!(window_note("1\n", 0, 1), None);
        // An empty file says so.
        assert_eq!(window_note("", 0, 0).as_deref(), Some("(empty file)"));
    }
}
