//! The agent's tools (exec, read_file, write_file, edit_file, list_dir) as the model sees them:
//! every one is a sandboxd call, and every result is text formatted the way the Python nanobot
//! formats it, so prompts written for it keep working. `TOOLS` is the one table: it gives the
//! model its tool list (`specs`) and dispatches its calls (`call`); `nanobot tool NAME JSON` runs
//! one of them.

pub mod context;
pub mod exec;
pub mod exec_format;
pub mod files;

pub use context::{Ctx, Output};

use crate::provider::message::ToolSpec;
use context::err;
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;

/// A running tool call: the model's text on success or error.
pub type Running<'a> = Pin<Box<dyn Future<Output = Result<Output, Output>> + Send + 'a>>;

/// One tool: what the model is told about it, and what runs it.
pub struct Tool {
    pub name: &'static str,
    pub description: &'static str,
    /// The JSON schema of its arguments.
    pub parameters: fn() -> Value,
    pub handler: for<'a> fn(&'a mut Ctx, &'a Value) -> Running<'a>,
}

pub static TOOLS: &[Tool] = &[
    Tool {
        name: "exec",
        description: "Execute a shell command in the workspace (confined by the kernel: no access outside the workspace, no network unless the profile allows it) and return its output.",
        parameters: || {
            json!({"type": "object", "properties": {
                "command": {"type": "string", "description": "The shell command to execute"},
                "working_dir": {"type": "string", "description": "Optional directory to run in: relative to the workspace, or an absolute path inside it (the workspace itself never changes)"}
            }, "required": ["command"]})
        },
        handler: |c, a| Box::pin(exec::run(c, a)),
    },
    Tool {
        name: "read_file",
        description: "Read a text file in the workspace.",
        parameters: || {
            json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "The file path to read"},
                "offset": {"type": "integer", "description": "First line to read (1-based)"},
                "limit": {"type": "integer", "description": "Number of lines to read"}
            }, "required": ["path"]})
        },
        handler: |c, a| Box::pin(files::read_file(c, a)),
    },
    Tool {
        name: "write_file",
        description: "Write content to a file in the workspace, creating parent directories.",
        parameters: || {
            json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "The file path to write to"},
                "content": {"type": "string", "description": "The content to write"}
            }, "required": ["path", "content"]})
        },
        handler: |c, a| Box::pin(files::write_file(c, a)),
    },
    Tool {
        name: "edit_file",
        description: "Edit a file by replacing old_text, which must occur exactly once, with new_text.",
        parameters: || {
            json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "The file path to edit"},
                "old_text": {"type": "string", "description": "The exact text to find and replace"},
                "new_text": {"type": "string", "description": "The text to replace it with"}
            }, "required": ["path", "old_text", "new_text"]})
        },
        handler: |c, a| Box::pin(files::edit_file(c, a)),
    },
    Tool {
        name: "list_dir",
        description: "List the contents of a directory in the workspace.",
        parameters: || {
            json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "The directory path to list"}
            }, "required": ["path"]})
        },
        handler: |c, a| Box::pin(files::list_dir(c, a)),
    },
];

/// The tool list sent to the model.
pub fn specs() -> Vec<ToolSpec> {
    TOOLS
        .iter()
        .map(|t| ToolSpec {
            name: t.name,
            description: t.description,
            parameters: (t.parameters)(),
        })
        .collect()
}

pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

/// `exec, read_file, write_file, edit_file, list_dir`.
pub fn names() -> String {
    TOOLS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}

/// Run the tool the model called; an unknown name is an error result like any other.
pub async fn call(ctx: &mut Ctx, name: &str, args: &Value) -> Output {
    let r = match find(name) {
        Some(t) => (t.handler)(ctx, args).await,
        None => Err(err(format!(
            "unknown tool '{name}'; available: {}",
            names()
        ))),
    };
    r.unwrap_or_else(|e| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_unique_name_a_schema_and_a_description() {
        let mut seen = std::collections::HashSet::new();
        for t in TOOLS {
            assert!(seen.insert(t.name), "{} twice", t.name);
            assert!(!t.description.is_empty(), "{}", t.name);
            let p = (t.parameters)();
            assert_eq!(p["type"], "object", "{}", t.name);
            let props = p["properties"].as_object().expect("properties");
            for r in p["required"].as_array().expect("required") {
                let r = r.as_str().expect("a name");
                assert!(
                    props.contains_key(r),
                    "{}: {r} required, not described",
                    t.name
                );
            }
            assert!(std::ptr::eq(find(t.name).unwrap(), t));
        }
        assert_eq!(names(), "exec, read_file, write_file, edit_file, list_dir");
        let specs = specs();
        assert_eq!(specs.len(), TOOLS.len());
        assert!(specs.iter().zip(TOOLS).all(|(s, t)| s.name == t.name));
        assert!(find("rm_rf").is_none());
    }
}
