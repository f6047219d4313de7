//! The file tools: read_file, write_file, edit_file and list_dir, each one sandboxd call on a
//! path inside the workspace, logged as operators grep for them.

use crate::text::{count, count_as};
use crate::tools::context::{arg, err, num, ok, Ctx, Output};
use nanobot_proto::pb::{EditFileRequest, ListDirRequest, ReadFileRequest, WriteFileRequest};
use serde_json::Value;

pub async fn read_file(ctx: &mut Ctx, args: &Value) -> Result<Output, Output> {
    let path = arg(args, "path")?.to_string();
    let req = ReadFileRequest {
        workspace: ctx.ws(),
        path: path.clone(),
        offset: num(args, "offset")?,
        limit: num(args, "limit")?,
    };
    match ctx.client.read_file(req).await {
        Ok(r) => {
            let r = r.into_inner();
            ctx.log.line("INFO", &format!("read_file path={path}"));
            let mut text = r.content;
            if r.truncated {
                let sep = if text.ends_with('\n') { "\n" } else { "\n\n" };
                text.push_str(&format!("{sep}{}", r.note));
            }
            Ok(ok(text))
        }
        Err(st) => {
            ctx.log_status(&format!("read_file path={path}"), &st);
            Err(err(st.message()))
        }
    }
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
            Err(err(st.message()))
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
            Err(err(st.message()))
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
            Err(err(st.message()))
        }
    }
}
