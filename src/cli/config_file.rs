//! The optional settings file, named by `--config PATH` or `LINKGATE_CONFIG`.
//!
//! It is TOML whose keys name the same settings as the `LINKGATE_*` variables: a key's table path
//! joined with `_` is the variable without its prefix, so `[deck] client_id = "…"` and
//! `deck_client_id = "…"` both set `LINKGATE_DECK_CLIENT_ID`. Precedence is defaults, then the
//! file, then the environment, then flags: the file's values become the defaults of the command
//! line before it is parsed, so one parser (clap's) validates every source the same way and names
//! the flag of a bad value. A key that names no setting is refused with its name (a typo must not
//! leave a production setting at its default unnoticed). Arrays become comma-separated values,
//! as the variables that take several values (encryption keys, peppers) expect.

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The variable that names the settings file when `--config` is not given.
pub const CONFIG_ENV: &str = "LINKGATE_CONFIG";
const PREFIX: &str = "LINKGATE_";

/// The settings file named by `--config` in `args` (a command line, program name first), else by
/// `env` (the value of [`CONFIG_ENV`]).
pub fn path_from(args: &[OsString], env: Option<OsString>) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    env.filter(|value| !value.is_empty()).map(PathBuf::from)
}

/// `command` with the settings of the file at `path` as its defaults, in every subcommand that
/// has them.
pub fn apply_file(command: clap::Command, path: &Path) -> anyhow::Result<clap::Command> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the settings file {}", path.display()))?;
    let values = parse(&text, &variables(&command)).with_context(|| format!("settings file {}", path.display()))?;
    Ok(apply(command, &values))
}

/// Every `LINKGATE_*` variable of `command` and its subcommands, with the id of its argument.
fn variables(command: &clap::Command) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    collect_variables(command, &mut found);
    found
}

fn collect_variables(command: &clap::Command, found: &mut BTreeMap<String, String>) {
    for arg in command.get_arguments() {
        if let Some(name) = arg.get_env().and_then(|name| name.to_str()) {
            found.insert(name.to_owned(), arg.get_id().to_string());
        }
    }
    for subcommand in command.get_subcommands() {
        collect_variables(subcommand, found);
    }
}

/// The file's values by variable name. Every key must name one of `known`.
fn parse(text: &str, known: &BTreeMap<String, String>) -> anyhow::Result<BTreeMap<String, String>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let mut values = BTreeMap::new();
    let mut unknown = Vec::new();
    flatten("", &table, &mut values, &mut unknown)?;
    unknown.extend(values.keys().filter(|name| !known.contains_key(*name)).map(|name| key_of(name)));
    if !unknown.is_empty() {
        bail!(
            "unknown settings: {} (keys are the LINKGATE_* variables without the prefix, in lower case)",
            unknown.join(", ")
        );
    }
    Ok(values)
}

/// The file key a variable name came from, for messages.
fn key_of(variable: &str) -> String {
    variable.trim_start_matches(PREFIX).to_ascii_lowercase()
}

fn flatten(
    path: &str,
    table: &toml::Table,
    values: &mut BTreeMap<String, String>,
    unknown: &mut Vec<String>,
) -> anyhow::Result<()> {
    for (key, value) in table {
        let path = if path.is_empty() { key.clone() } else { format!("{path}_{key}") };
        let variable = format!("{PREFIX}{}", path.to_ascii_uppercase().replace('-', "_"));
        let text = match value {
            toml::Value::Table(inner) => {
                flatten(&path, inner, values, unknown)?;
                continue;
            }
            toml::Value::Array(items) => {
                items.iter().map(scalar).collect::<Option<Vec<_>>>().map(|items| items.join(","))
            }
            other => scalar(other),
        };
        let Some(text) = text else {
            unknown.push(format!("{path} (not a string, number, boolean or list of them)"));
            continue;
        };
        if values.insert(variable, text).is_some() {
            bail!("{path} is set twice");
        }
    }
    Ok(())
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// Makes each value the default of the argument reading its variable, wherever it appears.
fn apply(mut command: clap::Command, values: &BTreeMap<String, String>) -> clap::Command {
    for (variable, value) in values {
        command = set_default(command, variable, value);
    }
    command
}

fn set_default(mut command: clap::Command, variable: &str, value: &str) -> clap::Command {
    let ids: Vec<String> = command
        .get_arguments()
        .filter(|arg| arg.get_env().is_some_and(|name| name == variable))
        .map(|arg| arg.get_id().to_string())
        .collect();
    for id in ids {
        // Defaults print in --help; a secret from the file must not.
        let value = value.to_owned();
        command = command.mut_arg(id, |arg| arg.default_value(value).hide_default_value(true));
    }
    let names: Vec<String> = command.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
    for name in names {
        command = command.mut_subcommand(name, |sub| set_default(sub, variable, value));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        settings: crate::config::Settings,
    }

    fn parse_with_file(text: &str, args: &[&str]) -> anyhow::Result<crate::config::Settings> {
        let command = Cli::command();
        let values = parse(text, &variables(&command))?;
        let matches =
            apply(command, &values).try_get_matches_from(std::iter::once("linkgate").chain(args.iter().copied()))?;
        Ok(Cli::from_arg_matches(&matches)?.settings)
    }

    #[test]
    fn file_values_apply_in_tables_or_flat_and_flags_win() {
        let file = r#"
            grpc_addr = "0.0.0.0:50051"
            database_max_connections = 32
            [deck]
            client_id = "from-file"
            request_timeout = "3s"
        "#;
        let settings = parse_with_file(file, &["--database-max-connections", "7"]).unwrap();
        assert_eq!(settings.grpc_addr.to_string(), "0.0.0.0:50051");
        assert_eq!(settings.database.database_max_connections, 7, "a flag beats the file");
        assert_eq!(settings.providers.deck.client_id.as_deref(), Some("from-file"));
        assert_eq!(settings.providers.deck.request_timeout, std::time::Duration::from_secs(3));
    }

    #[test]
    fn unknown_keys_are_refused_by_name_and_bad_values_name_their_flag() {
        let error = parse_with_file("[deck]\nclient_idd = \"x\"\nbase_urll = \"y\"", &[]).unwrap_err().to_string();
        assert!(error.contains("deck_client_idd") && error.contains("deck_base_urll"), "{error}");
        let error = parse_with_file("sync_tick = \"soon\"", &[]).unwrap_err().to_string();
        assert!(error.contains("--sync-tick"), "{error}");
        assert!(parse_with_file("grpc_addr = [\"a\", {x = 1}]", &[]).is_err());
        assert!(parse_with_file("not toml at all", &[]).is_err());
    }

    #[test]
    fn lists_become_comma_separated_values() {
        let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let settings = parse_with_file(&format!("encryption_key = [\"{key}\", \"{key}\"]"), &[]).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(settings.secrets.encryption_key.unwrap().expose_secret(), format!("{key},{key}"));
    }

    #[test]
    fn the_file_is_found_by_flag_then_variable() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(path_from(&args(&["linkgate", "serve", "--config", "a.toml"]), None), Some("a.toml".into()));
        assert_eq!(
            path_from(&args(&["linkgate", "--config=b.toml", "serve"]), Some("c".into())),
            Some("b.toml".into())
        );
        assert_eq!(path_from(&args(&["linkgate", "serve"]), Some("c.toml".into())), Some("c.toml".into()));
        assert_eq!(path_from(&args(&["linkgate", "serve"]), Some("".into())), None);
    }
}
