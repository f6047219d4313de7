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
use context::{arg, bad_arg, err, num};
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

/// Check a call's arguments against the tool's schema, the same for every tool: a JSON object,
/// every required argument there, every argument given of its type (extra ones are ignored).
/// Wrong arguments are an error result with code `EXIT_BAD_ARGS`: the tool did not run.
pub fn check_args(tool: &Tool, args: &Value) -> Result<(), Output> {
    if !args.is_object() {
        return Err(bad_arg(format!(
            "the arguments of {} must be a JSON object, got {}",
            tool.name,
            context::kind(args)
        )));
    }
    let schema = (tool.parameters)();
    for r in schema["required"].as_array().into_iter().flatten() {
        if let Some(name) = r.as_str() {
            if args.get(name).is_none_or(Value::is_null) {
                return Err(bad_arg(format!("missing required argument '{name}'")));
            }
        }
    }
    for (name, p) in schema["properties"].as_object().into_iter().flatten() {
        if args.get(name).is_none_or(Value::is_null) {
            continue;
        }
        match p["type"].as_str() {
            Some("string") => {
                arg(args, name)?;
            }
            Some("integer") => {
                num(args, name)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Run the tool the model called; an unknown name or wrong arguments are an error result like
/// any other.
pub async fn call(ctx: &mut Ctx, name: &str, args: &Value) -> Output {
    let r = match find(name) {
        Some(t) => match check_args(t, args) {
            Ok(()) => (t.handler)(ctx, args).await,
            Err(e) => Err(e),
        },
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

    /// Every tool's arguments are checked the same way, from its schema: exit code 2 and a
    /// message that names the argument and says what is wrong with it.
    #[test]
    fn wrong_arguments_are_refused_the_same_way_for_every_tool() {
        let check = |name: &str, args: Value| check_args(find(name).unwrap(), &args);
        for t in TOOLS {
            let e = check_args(t, &json!([1])).unwrap_err();
            assert_eq!(e.code, context::EXIT_BAD_ARGS, "{}", t.name);
            assert!(e.is_error);
            assert!(
                e.text.contains("must be a JSON object, got an array"),
                "{}",
                e.text
            );
            let required = (t.parameters)()["required"].clone();
            if let Some(first) = required.as_array().and_then(|r| r.first()) {
                let e = check_args(t, &json!({})).unwrap_err();
                assert_eq!(e.code, 2);
                assert_eq!(
                    e.text,
                    format!(
                        "Error: missing required argument '{}'",
                        first.as_str().unwrap()
                    )
                );
            }
        }
        let e = check("exec", json!({"command": 5})).unwrap_err();
        assert_eq!(
            (e.code, e.text.as_str()),
            (
                2,
                "Error: argument 'command' must be a string, got a number"
            )
        );
        let e = check("exec", json!({"command": "ls", "working_dir": ["a"]})).unwrap_err();
        assert_eq!(
            e.text,
            "Error: argument 'working_dir' must be a string, got an array"
        );
        let e = check("read_file", json!({"path": "a", "offset": -1})).unwrap_err();
        assert_eq!(
            e.text,
            "Error: argument 'offset' must be a non-negative integer, got -1"
        );
        let e = check("list_dir", json!({"path": true})).unwrap_err();
        assert_eq!(
            e.text,
            "Error: argument 'path' must be a string, got a boolean"
        );
        let e = check("write_file", json!({"path": "a", "content": null})).unwrap_err();
        assert_eq!(e.text, "Error: missing required argument 'content'");
        // Right: nulls for optional arguments, extra arguments.
        assert!(check("exec", json!({"command": "ls", "working_dir": null})).is_ok());
        assert!(check("read_file", json!({"path": "a", "offset": 2, "x": 1})).is_ok());
        assert!(check("list_dir", json!({"path": "."})).is_ok());
    }
}
