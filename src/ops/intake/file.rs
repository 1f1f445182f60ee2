//! `request add --from FILE`: an intake file (CSV or JSON lines) recorded
//! a chunk at a time, tickets compared with their owners.

use super::*;

/// How many lines of an intake file are recorded at once: memory stays
/// bounded whatever the file's size.
const INTAKE_CHUNK: usize = 10_000;

/// One line of an intake file (`request add --from FILE`): CSV with a
/// header, or JSON lines; empty CSV fields are absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntakeLine {
    project_id: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    user_hex: Option<String>,
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default)]
    requested_by: Option<String>,
    #[serde(default)]
    received_at: Option<String>,
    #[serde(default)]
    regime: Option<String>,
    /// `true`/`false` (also `1`/`0`).
    #[serde(default)]
    anonymous: Option<serde_json::Value>,
    /// `SYSTEM:ID`, several separated by spaces.
    #[serde(default)]
    also_wiped: Option<String>,
}

impl IntakeLine {
    fn request(self, regime: Regime) -> anyhow::Result<NewIntake> {
        let given = |v: Option<String>| v.filter(|s| !s.is_empty());
        let user_id = crate::vocabulary::request::user_arg(
            given(self.user_id).as_deref(),
            given(self.user_hex).as_deref(),
        )?;
        let anonymous = match self.anonymous {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(serde_json::Value::String(s)) if s.is_empty() => false,
            Some(serde_json::Value::String(s)) => match s.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => {
                    return fail(
                        ErrorCode::InvalidPayload,
                        format!("anonymous: {other:?} is not true or false"),
                    );
                }
            },
            Some(other) => {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!("anonymous: {other} is not true or false"),
                );
            }
        };
        let new = NewIntake {
            project_id: ValidId::new("project_id", &self.project_id)?,
            user_id,
            anonymous,
            received_at: given(self.received_at)
                .map(|t| crate::vocabulary::deadline::parse_time("received_at", &t))
                .transpose()?,
            requested_by: given(self.requested_by),
            ticket: given(self.ticket),
            regime: match given(self.regime) {
                Some(text) => Regime::parse(&text)?,
                None => regime,
            },
            also_wiped: given(self.also_wiped)
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
        };
        Ok(new)
    }
}

/// What `request add --from FILE` answers.
#[derive(Debug, Default, Serialize)]
pub struct AddedMany {
    /// Requests recorded now.
    pub added: usize,
    /// Lines whose ticket was recorded before (the same request).
    pub already_recorded: usize,
    pub rejected: Vec<crate::ops::report::RejectedLine>,
}

/// Record every valid line of an intake file, `INTAKE_CHUNK` at a time;
/// refused lines are listed (the valid ones are recorded).
pub async fn add_file(
    at: &IntakeAt<'_>,
    path: &std::path::Path,
    regime: Regime,
) -> anyhow::Result<AddedMany> {
    table::ensure(at.server, &at.table, at.place).await?;
    let text_error = |e: &dyn std::fmt::Display| {
        Failure::new(
            ErrorCode::InvalidPayload,
            format!("{}: {e}", path.display()),
        )
    };
    let file = std::fs::File::open(path).map_err(|e| text_error(&e))?;
    let mut reader = std::io::BufReader::new(file);
    let json_lines = {
        use std::io::BufRead;
        let head = reader.fill_buf().map_err(|e| text_error(&e))?;
        String::from_utf8_lossy(head).trim_start().starts_with('{')
    };
    let mut report = AddedMany::default();
    let mut chunk: Vec<(usize, NewIntake)> = Vec::new();
    let take = |line: usize,
                parsed: anyhow::Result<IntakeLine>,
                chunk: &mut Vec<(usize, NewIntake)>,
                report: &mut AddedMany| {
        match parsed.and_then(|l| l.request(regime)) {
            Ok(new) => chunk.push((line, new)),
            Err(error) => report.rejected.push(crate::ops::report::RejectedLine {
                line,
                error: format!("{error:#}"),
            }),
        }
    };
    if json_lines {
        use std::io::BufRead;
        for (index, line) in reader.lines().enumerate() {
            let line_number = index + 1;
            let text = line.map_err(|e| text_error(&e))?;
            if text.trim().is_empty() {
                continue;
            }
            let parsed = serde_json::from_str::<IntakeLine>(&text).map_err(anyhow::Error::from);
            take(line_number, parsed, &mut chunk, &mut report);
            if chunk.len() >= INTAKE_CHUNK {
                record_chunk(at, std::mem::take(&mut chunk), &mut report).await?;
            }
        }
    } else {
        let mut csv = csv::Reader::from_reader(reader);
        for (index, row) in csv.deserialize::<IntakeLine>().enumerate() {
            // The header is line 1.
            take(
                index + 2,
                row.map_err(anyhow::Error::from),
                &mut chunk,
                &mut report,
            );
            if chunk.len() >= INTAKE_CHUNK {
                record_chunk(at, std::mem::take(&mut chunk), &mut report).await?;
            }
        }
    }
    record_chunk(at, chunk, &mut report).await?;
    Ok(report)
}

/// Record a chunk of new requests: those whose ticket is known (before, or
/// earlier in the chunk) are the same request.
async fn record_chunk(
    at: &IntakeAt<'_>,
    chunk: Vec<(usize, NewIntake)>,
    report: &mut AddedMany,
) -> anyhow::Result<()> {
    let tickets: Vec<String> = chunk.iter().filter_map(|(_, n)| n.ticket.clone()).collect();
    // Each known ticket's owner: its project and user (or the user's hash).
    let mut known: std::collections::BTreeMap<String, IntakeRow> =
        table::current(at.server, &at.table, Which::Tickets(&tickets))
            .await?
            .into_iter()
            .map(|r| (r.ticket.clone(), r))
            .collect();
    let mut rows = Vec::new();
    for (line, new) in chunk {
        if let Err(error) = new.check(now()) {
            report.rejected.push(crate::ops::report::RejectedLine {
                line,
                error: format!("{error:#}"),
            });
            continue;
        }
        if let Some(ticket) = &new.ticket {
            if let Some(owner) = known.get(ticket) {
                if is_owner(owner, &new, at.key) {
                    report.already_recorded += 1;
                } else {
                    report.rejected.push(crate::ops::report::RejectedLine {
                        line,
                        error: format!(
                            "ticket {} is request {} of another project or user",
                            shown(ticket),
                            owner.request_id
                        ),
                    });
                }
                continue;
            }
            let row = new_row(&new);
            known.insert(ticket.clone(), row.clone());
            rows.push(row);
            continue;
        }
        rows.push(new_row(&new));
    }
    table::append(at.server, &at.table, &rows).await?;
    report.added += rows.len();
    Ok(())
}
