//! The exec tool: a shell command in the workspace (or a directory inside it), run by sandboxd,
//! logged in the words operators grep for (`ExecTool:`, `Access denied`, `blocked by safety
//! guard`), its result formatted for the model.

use crate::sandbox::drain::{self, Failed};
use crate::sandbox::outcome::{exit_code, EXIT_REFUSED};
use crate::sandbox::vocab;
use crate::sandbox::workspace::relative_cwd;
use crate::tools::context::{arg, err, opt_arg, Ctx, Output, EXIT_BAD_ARGS};
use crate::tools::exec_format::{format_exec, Ending, Stream};
use nanobot_proto::pb::{ExecRequest, LimitHit};
use serde_json::Value;
use std::time::Instant;

/// Run the tool. Wrong arguments are `EXIT_BAD_ARGS` (2), as for every tool; an exec that did not
/// run for another reason (an empty command, refused, blocked, the sandbox failed) is what
/// `nanobot exec` reports as 125.
pub async fn run(ctx: &mut Ctx, args: &Value) -> Result<Output, Output> {
    exec(ctx, args).await.map_err(|e| match e.code {
        EXIT_BAD_ARGS => e,
        _ => Output {
            code: EXIT_REFUSED,
            ..e
        },
    })
}

async fn exec(ctx: &mut Ctx, args: &Value) -> Result<Output, Output> {
    let command = arg(args, "command")?.to_string();
    let wd = opt_arg(args, "working_dir")?.unwrap_or("");
    // In the model's own terms: sandboxd's answer names `argv`, which the model cannot set. A
    // command of only whitespace runs nothing: empty too, not a silent success.
    if command.trim().is_empty() {
        return Err(err(
            "command is empty: give the shell command to run in 'command'",
        ));
    }
    let what = format!("ExecTool: command={command:?}");
    // The working directory is only ever a directory inside the workspace, which stays the
    // agent's own: sandboxd resolves `cwd` beneath it and the kernel confines the command.
    let cwd = match relative_cwd(&ctx.workspace, wd, "working_dir") {
        Ok(c) => c,
        Err(e) if ctx.restrict => {
            ctx.log.line("WARN", &format!("{what}: Access denied: {e}"));
            return Err(err(e));
        }
        // restrictToWorkspace false: ask anyway; sandboxd refuses what leads out.
        Err(_) => wd.to_string(),
    };
    let t0 = Instant::now();
    let req = ExecRequest {
        workspace: ctx.ws(),
        cwd,
        command: command.clone(),
        timeout_secs: ctx.timeout,
        profile: ctx.profile.clone(),
        ..Default::default()
    };
    let done = match drain::run(&mut ctx.client, req, drain::OutputMode::Collect).await {
        Ok(d) => d,
        Err(Failed::Request(st)) => {
            ctx.log_status(&what, &st);
            if st.code() == tonic::Code::InvalidArgument && st.message().starts_with("cwd") {
                return Err(err(format!(
                    "working_dir {wd} refused by sandboxd: {}",
                    st.message()
                )));
            }
            return Err(err(st.message()));
        }
        Err(Failed::Stream(st)) => {
            ctx.log_status(&what, &st);
            return Err(err(st.message()));
        }
        Err(Failed::Gone { started, cause }) => {
            let ms = t0.elapsed().as_millis();
            let sentence = drain::gone(started);
            ctx.log.line(
                "WARN",
                &format!("{what} error={sentence:?} cause={cause:?} duration={ms}ms"),
            );
            return Err(err(sentence));
        }
    };
    let ms = t0.elapsed().as_millis();
    let (out, errb, r) = (done.stdout, done.stderr, done.result);
    if r.blocked {
        ctx.log.line(
            "WARN",
            &format!(
                "{what} blocked by safety guard: pattern={:?} duration={ms}ms",
                r.blocked_pattern
            ),
        );
        return Err(err(format!(
            "Command blocked by safety guard (dangerous pattern detected: {})",
            r.blocked_pattern
        )));
    }
    if r.refused {
        ctx.log.line(
            "WARN",
            &format!(
                "{what} refused layer={} reason={:?} duration={ms}ms",
                r.refused_layer, r.refused_reason
            ),
        );
        return Err(err(format!("sandbox refused: {}", r.refused_reason)));
    }
    ctx.log.line(
        "INFO",
        &format!(
            "{what} exit={} signal={} timed_out={} duration={ms}ms",
            r.exit_code, r.signal, r.timed_out
        ),
    );
    let code = exit_code(&r, None);
    let limit = vocab::limit_hit(&r);
    let limit_hit = match limit {
        LimitHit::Unspecified => r.limit_hit.clone(),
        l => vocab::limit_name(l),
    };
    let text = format_exec(
        &Stream::new(out, r.stdout_tail, r.stdout_bytes),
        &Stream::new(errb, r.stderr_tail, r.stderr_bytes),
        &Ending {
            exit_code: r.exit_code,
            signal: r.signal,
            timed_out: r.timed_out,
            timeout_secs: r.timeout_secs,
            limit,
            limit_hit,
            sandbox_truncated: r.stdout_truncated || r.stderr_truncated,
        },
    );
    Ok(Output {
        text,
        is_error: r.timed_out,
        code,
    })
}
