//! The command line (clap derive). Credentials are never arguments: they come from the
//! profile's files or the environment (docs/simctl.md).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "simctl",
    version,
    about = "Operate and audit the SIM platform from a shell"
)]
pub struct Cli {
    /// The profile of the configuration file to use.
    #[arg(long, global = true, env = "SIMCTL_PROFILE")]
    pub profile: Option<String>,
    /// The configuration file (default: $SIMCTL_CONFIG, else ~/.config/simctl/config.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// How results are printed.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table")]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in with a username and password; keeps the session (refresh token) in a 0600 file.
    Login(LoginArgs),
    /// Ends the session: revokes its refresh token and removes the file.
    Logout,
    /// Who the API sees (user or API key, and role).
    Whoami,
    /// SIMs: list, show, and the commands on one SIM.
    #[command(subcommand)]
    Sims(SimsCommand),
    /// Bulk jobs: one action over many SIMs, from a CSV, stdin, ICCIDs or a filter.
    #[command(subcommand)]
    Bulk(BulkCommand),
    /// A SIM's full history from the event store, oldest first.
    History(HistoryArgs),
    /// A SIM as it was at an instant, rebuilt from its events.
    State(StateArgs),
    /// What changed in a SIM between two instants, field by field.
    Diff(DiffArgs),
    /// The event stream (NATS JetStream).
    #[command(subcommand)]
    Events(EventsCommand),
    /// The query API's global feed of stored events (`GET /events?after=`).
    Feed(FeedArgs),
    /// Audit: the log exported as a hash chain, and its verification.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Prints a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Default: the profile's `username`, else asked for.
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password from the first line of stdin instead of a prompt.
    #[arg(long, conflicts_with = "password_file")]
    pub password_stdin: bool,
    /// Read the password from this file's first line (default: the profile's `password_file`).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

/// What every command on a SIM may carry.
#[derive(Debug, Args, Clone)]
pub struct CommandOptions {
    /// Sent as `Idempotency-Key` (default: a new random key per invocation, reused by
    /// simctl's own retries); give the same key to repeat a command safely from a script.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Refuse the command unless the SIM is at this version (`If-Match`).
    #[arg(long)]
    pub if_version: Option<i64>,
    /// Wait until the read models have applied the command (its consistency token), then
    /// print the SIM as the query API shows it.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum SimsCommand {
    /// One page of SIMs, or every page with `--all` (keyset cursor).
    List(ListArgs),
    /// One SIM.
    Show { iccid: String },
    /// Registers a SIM.
    Register {
        iccid: String,
        #[arg(long)]
        imsi: String,
        #[arg(long)]
        msisdn: Option<String>,
        #[arg(long)]
        label: Option<String>,
        /// A tag (repeat for several).
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Sets or clears a SIM's label.
    Label {
        iccid: String,
        #[arg(required_unless_present = "clear")]
        label: Option<String>,
        #[arg(long, conflicts_with = "label")]
        clear: bool,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Adds and removes tags (read, changed, written with `If-Match`; retried on a race).
    Tag {
        iccid: String,
        #[arg(long = "add")]
        add: Vec<String>,
        #[arg(long = "remove")]
        remove: Vec<String>,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Requests the SIM's activation at the provider.
    Activate {
        iccid: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Requests the SIM's suspension at the provider.
    Suspend {
        iccid: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Requests a connectivity reset at 1NCE (an active SIM's data session is dropped and
    /// re-attached); the outcome is the SIM's `controls.last_reset`.
    Reset {
        iccid: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Switches auto top-up on or off at 1NCE (`on` or `off`).
    AutoTopup {
        iccid: String,
        #[arg(value_enum)]
        setting: OnOff,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Terminates the SIM (final; its history stays readable).
    Terminate {
        iccid: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Requests the provider's standard top-up.
    Topup {
        iccid: String,
        #[arg(long, value_enum, default_value = "data")]
        quota: Quota,
        #[arg(long)]
        payment_method: Option<String>,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Sends an SMS to the SIM (`-` reads the text from stdin).
    Sms {
        iccid: String,
        text: String,
        #[arg(long)]
        source_address: Option<String>,
        #[command(flatten)]
        options: CommandOptions,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Quota {
    Data,
    Sms,
}

impl Quota {
    pub fn name(self) -> &'static str {
        match self {
            Quota::Data => "data",
            Quota::Sms => "sms",
        }
    }
}

/// The filters of `GET /sims` (and of a bulk job's `--filter` target).
#[derive(Debug, Args, Clone, Default)]
pub struct Filters {
    /// Status(es), comma-separated: inactive, active, suspended, terminated.
    #[arg(long)]
    pub status: Option<String>,
    /// Tag(s) the SIM carries, comma-separated (all of them).
    #[arg(long)]
    pub tag: Option<String>,
    /// Case-insensitive substring of the label.
    #[arg(long)]
    pub label: Option<String>,
    /// ICCID prefix.
    #[arg(long)]
    pub iccid: Option<String>,
    #[arg(long)]
    pub imsi: Option<String>,
    #[arg(long)]
    pub msisdn: Option<String>,
    /// ok, warning, exhausted (comma-separated).
    #[arg(long)]
    pub quota_state: Option<String>,
    /// data or sms: the quota `--quota-state` looks at.
    #[arg(long)]
    pub quota: Option<String>,
}

impl Filters {
    pub fn pairs(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("status", self.status.clone()),
            ("tag", self.tag.clone()),
            ("label", self.label.clone()),
            ("iccid", self.iccid.clone()),
            ("imsi", self.imsi.clone()),
            ("msisdn", self.msisdn.clone()),
            ("quota_state", self.quota_state.clone()),
            ("quota", self.quota.clone()),
        ]
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filters: Filters,
    /// iccid (default), imsi, msisdn, label, status, registered_at, updated_at, last_seen_at;
    /// a leading - sorts descending.
    #[arg(long, allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// Rows per page (1–500).
    #[arg(long, default_value_t = 50)]
    pub page_size: u32,
    /// The page number (without --all).
    #[arg(long, conflicts_with = "all")]
    pub page: Option<u32>,
    /// Walk every page with the API's keyset cursor.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum BulkCommand {
    /// Submits a job and follows it to the end, then prints every item's outcome.
    Run(BulkRunArgs),
    /// A job's progress.
    Show { id: String },
    /// Follows a job to the end and prints its items' outcomes.
    Wait { id: String },
    /// Stops what has not started of a job.
    Cancel { id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BulkAction {
    Activate,
    Suspend,
    Terminate,
    TopUp,
    SendSms,
    SetLabel,
    AddTags,
    RemoveTags,
    Sync,
}

impl BulkAction {
    /// The API's name of the action.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Activate => "activate",
            Self::Suspend => "suspend",
            Self::Terminate => "terminate",
            Self::TopUp => "top_up",
            Self::SendSms => "send_sms",
            Self::SetLabel => "set_label",
            Self::AddTags => "add_tags",
            Self::RemoveTags => "remove_tags",
            Self::Sync => "sync",
        }
    }
}

#[derive(Debug, Args)]
pub struct BulkRunArgs {
    #[arg(value_enum)]
    pub action: BulkAction,
    /// A CSV of ICCIDs (an `iccid` column under a header, or one per line); `-` reads stdin.
    /// Without --file, --iccid or --filter, stdin is read.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// ICCIDs (repeat, or comma-separated).
    #[arg(long = "iccid", value_delimiter = ',')]
    pub iccids: Vec<String>,
    /// A filter of `sims list`, frozen at submission: `status=active`, `tag=fleet-7` (repeat).
    #[arg(long = "filter", value_parser = parse_pair)]
    pub filter: Vec<(String, String)>,
    /// set-label: the label (`--clear-label` clears it).
    #[arg(long)]
    pub label: Option<String>,
    #[arg(long, conflicts_with = "label")]
    pub clear_label: bool,
    /// add-tags, remove-tags: the tags (repeat, or comma-separated).
    #[arg(long = "tag", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// send-sms: the text.
    #[arg(long)]
    pub payload: Option<String>,
    #[arg(long)]
    pub source_address: Option<String>,
    /// top-up: data (default) or sms.
    #[arg(long, value_enum)]
    pub quota: Option<Quota>,
    #[arg(long)]
    pub payment_method: Option<String>,
    /// Report what would happen to each SIM, writing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Submit and print the job without following it.
    #[arg(long)]
    pub detach: bool,
    /// Sent as `Idempotency-Key`: the same key and request answer the same job.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub iccid: String,
    /// Start after this position (the last one seen).
    #[arg(long, default_value_t = 0)]
    pub after: i64,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    pub iccid: String,
    /// RFC 3339 instant (default: now).
    #[arg(long)]
    pub as_of: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub iccid: String,
    /// RFC 3339 instant: before.
    pub from: String,
    /// RFC 3339 instant: after.
    pub to: String,
    /// Also list the fields that did not change.
    #[arg(long)]
    pub all_fields: bool,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Prints events from the JetStream stream as they arrive.
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// A durable consumer of this name: it resumes where the last run acknowledged.
    /// Without it, an ephemeral consumer.
    #[arg(long)]
    pub durable: Option<String>,
    /// Start after the event at this position (the last one you saw; 0: the stream's start).
    /// Without it, new events only (a new durable starts at the stream's start).
    #[arg(long)]
    pub from_position: Option<i64>,
    /// Only this SIM's events.
    #[arg(long)]
    pub iccid: Option<String>,
    /// Only events of this type (e.g. SimActivated).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Stop after this many events.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct FeedArgs {
    /// Start after this position (`next_after` of the last run; 0: the beginning).
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// Stop after this many events.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// At the end of the log, keep polling for new events.
    #[arg(long)]
    pub follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Writes the log (the fleet's, or one SIM's) in the global order as a hash chain (JSON
    /// lines); the final hash goes to stderr: keep it apart, it anchors the chain.
    Export(ExportArgs),
    /// Checks a chain's links offline (removed, altered, reordered, truncated records) and,
    /// with --against-platform, against the live log and the read models.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this SIM's events (its SIM, quota and SMS events).
    #[arg(long)]
    pub iccid: Option<String>,
    /// Start after this position (0: the beginning of the log).
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// Write here instead of stdout.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The chain (`-`: stdin).
    pub file: PathBuf,
    /// The final hash printed at export: the chain must end with it.
    #[arg(long)]
    pub expect_hash: Option<String>,
    /// Also compare the chain with the live log record by record, and each of its SIMs'
    /// read-model row with the replay of the SIM's events.
    #[arg(long)]
    pub against_platform: bool,
}
