//! Commands run inside containers.

use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use super::{engine_error, Docker};
use e2e_runtime::engine::retry::repeatable;
use e2e_runtime::engine::{EngineResult, Output};

impl Docker {
    pub(super) async fn run(
        &self,
        id: &str,
        command: &[String],
        output: &mut (dyn FnMut(Output) + Send),
    ) -> EngineResult<i64> {
        let opts = CreateExecOptions {
            cmd: Some(command.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        // Made and not started, an exec has run nothing: its creation may be tried again.
        let created =
            repeatable(|| async { self.api.create_exec(id, opts.clone()).await.map_err(engine_error) }).await?;
        if let StartExecResults::Attached { output: mut stream, .. } =
            self.api.start_exec(&created.id, None).await.map_err(engine_error)?
        {
            while let Some(chunk) = stream.next().await {
                use bollard::container::LogOutput;
                match chunk.map_err(engine_error)? {
                    LogOutput::StdErr { message } => output(Output { stderr: true, bytes: message }),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        output(Output { stderr: false, bytes: message })
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        // The exit code can lag the end of the output by a moment.
        for _ in 0..100 {
            let info = repeatable(|| async { self.api.inspect_exec(&created.id).await.map_err(engine_error) }).await?;
            if info.running != Some(true) {
                return Ok(info.exit_code.unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(-1)
    }
}
