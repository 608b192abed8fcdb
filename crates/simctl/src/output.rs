//! `--output table|json|jsonl|csv`: rows (JSON objects) written as they come, for lists that
//! span pages (`--all`), and single objects.

use std::io::{self, Write};

use clap::ValueEnum;
use serde_json::Value;

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people (lists), `field  value` lines (one object).
    Table,
    /// One JSON document (an array for lists).
    Json,
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row; lists in a cell are joined with `;`.
    Csv,
}

/// A cell's text: strings as they are, `null` empty, lists joined with `;`, other values as
/// JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

/// Rows written in `format`: `columns` pick and order the fields of table and CSV rows (JSON
/// keeps whole objects).
pub struct Rows {
    format: Format,
    columns: Vec<String>,
    out: io::BufWriter<io::Stdout>,
    /// Table rows wait for the end, to size the columns.
    table: Vec<Vec<String>>,
    csv_header: bool,
    count: usize,
    /// Table rows printed as they come (followers), with columns as wide as seen so far.
    streaming: Option<Vec<usize>>,
}

impl Rows {
    pub fn new(format: Format, columns: &[&str]) -> Self {
        Self {
            format,
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            out: io::BufWriter::new(io::stdout()),
            table: Vec::new(),
            csv_header: false,
            count: 0,
            streaming: None,
        }
    }

    /// Rows of a follower (`events tail`, `feed`): a table prints each row at once.
    pub fn streaming(format: Format, columns: &[&str]) -> Self {
        let mut rows = Self::new(format, columns);
        rows.streaming = Some(columns.iter().map(|c| c.len()).collect());
        rows
    }

    pub fn push(&mut self, row: &Value) -> Result<()> {
        match self.format {
            Format::Json => {
                let separator = if self.count == 0 { "[\n  " } else { ",\n  " };
                write!(
                    self.out,
                    "{separator}{}",
                    serde_json::to_string(row).unwrap_or_default()
                )?;
            }
            Format::Jsonl => writeln!(self.out, "{row}")?,
            Format::Table => {
                let cells: Vec<String> = self.columns.iter().map(|c| cell(&row[c])).collect();
                match &mut self.streaming {
                    Some(widths) => {
                        if self.count == 0 {
                            let headers: Vec<String> =
                                self.columns.iter().map(|c| c.to_uppercase()).collect();
                            write_table_row(&mut self.out, &headers, widths)?;
                        }
                        for (width, text) in widths.iter_mut().zip(&cells) {
                            *width = (*width).max(text.chars().count());
                        }
                        write_table_row(&mut self.out, &cells, widths)?;
                    }
                    None => self.table.push(cells),
                }
            }
            Format::Csv => {
                if !self.csv_header {
                    self.out.write_all(&csv_line(&self.columns)?)?;
                    self.csv_header = true;
                }
                let cells: Vec<String> = self.columns.iter().map(|c| cell(&row[c])).collect();
                self.out.write_all(&csv_line(&cells)?)?;
            }
        }
        self.count += 1;
        Ok(())
    }

    /// Flushes what is written so far (a follower's line must reach a pipe at once).
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        match self.format {
            Format::Json if self.count == 0 => writeln!(self.out, "[]")?,
            Format::Json => writeln!(self.out, "\n]")?,
            Format::Csv if !self.csv_header => self.out.write_all(&csv_line(&self.columns)?)?,
            Format::Table if self.streaming.is_some() => {}
            Format::Table => {
                let headers: Vec<String> = self.columns.iter().map(|c| c.to_uppercase()).collect();
                let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
                for row in &self.table {
                    for (width, text) in widths.iter_mut().zip(row) {
                        *width = (*width).max(text.chars().count());
                    }
                }
                write_table_row(&mut self.out, &headers, &widths)?;
                for row in &self.table {
                    write_table_row(&mut self.out, row, &widths)?;
                }
            }
            _ => {}
        }
        self.out.flush()?;
        Ok(())
    }
}

/// One CSV record, quoted as RFC 4180 wants, with its line end.
fn csv_line(cells: &[String]) -> Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(cells)?;
    writer
        .into_inner()
        .map_err(|e| crate::error::CliError::usage(format!("CSV: {e}")))
}

fn write_table_row(out: &mut impl Write, cells: &[String], widths: &[usize]) -> Result<()> {
    let mut line = String::new();
    for (i, (text, width)) in cells.iter().zip(widths).enumerate() {
        if i + 1 == cells.len() {
            line.push_str(text);
        } else {
            line.push_str(&format!("{text:<width$}  "));
        }
    }
    writeln!(out, "{}", line.trim_end())?;
    Ok(())
}

/// One object: `field  value` lines (table), pretty JSON, one JSON line, or a CSV header and
/// row. `columns` order the fields; fields not named follow in the object's order.
pub fn object(format: Format, value: &Value, columns: &[&str]) -> Result<()> {
    let mut out = io::BufWriter::new(io::stdout());
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(value).unwrap_or_default())?,
        Format::Jsonl => writeln!(out, "{value}")?,
        Format::Table | Format::Csv => {
            let mut fields: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
            if let Some(map) = value.as_object() {
                fields.extend(map.keys().filter(|k| !columns.contains(&k.as_str())).cloned());
            }
            if format == Format::Csv {
                let mut writer = csv::Writer::from_writer(&mut out);
                writer.write_record(&fields)?;
                writer.write_record(fields.iter().map(|f| cell(&value[f])))?;
                writer.flush()?;
            } else {
                let width = fields.iter().map(|f| f.len()).max().unwrap_or(0);
                for field in &fields {
                    writeln!(out, "{field:<width$}  {}", cell(&value[field]))?;
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// A progress line on stderr, only when stderr is a terminal (scripts get the result alone).
pub struct Progress {
    tty: bool,
}

impl Progress {
    pub fn new() -> Self {
        use std::io::IsTerminal;
        Self {
            tty: io::stderr().is_terminal(),
        }
    }

    pub fn show(&self, done: u64, total: u64, detail: &str) {
        if !self.tty {
            return;
        }
        let width = 30;
        let filled = (done.min(total) * width as u64)
            .checked_div(total)
            .map_or(width, |f| f as usize);
        let bar = format!("{}{}", "#".repeat(filled), "-".repeat(width - filled));
        eprint!("\r[{bar}] {done}/{total} {detail}\x1b[K");
        let _ = io::stderr().flush();
    }

    pub fn end(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
