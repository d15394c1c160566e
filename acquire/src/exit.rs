//! The exit statuses of every `acquire` subcommand: one contract, written
//! once, shown by `--help`, the man page and the README alike.
//!
//! A script reads the status first and the JSON (`--json`) for detail.
//! When two apply, the more serious one wins: a failure over lost samples,
//! lost samples over an interruption (a loss is what a script must never
//! miss; `--json`'s `status` still says `interrupted`).

/// The work is done: a recording reached its `--duration`/`--samples` (or,
/// with neither, was stopped by SIGINT/SIGTERM, its only planned end), a
/// check passed, a listing was printed.
pub const COMPLETE: u8 = 0;
/// A runtime failure: a device that cannot be opened, a full disk, a
/// recording or segment that fails `verify`. What was durable is kept.
pub const FAILURE: u8 = 1;
/// The command line or its profile is wrong (an unknown flag, a bad value,
/// flags that do not go together, an invalid profile): nothing was done.
pub const USAGE: u8 = 2;
/// Samples were lost (counted, inferred or bounded) and `--allow-loss` was
/// not given. The recording is complete otherwise and verifies.
pub const SAMPLES_LOST: u8 = 3;
/// SIGINT or SIGTERM stopped a recording before its `--duration` or
/// `--samples`: the run is closed and verifies, but is shorter than asked.
pub const INTERRUPTED: u8 = 4;

/// The table, for `--help` and the man page.
pub const TABLE: &str = "\
Exit status (every subcommand):
  0  complete: the recording reached its --duration/--samples (or, with
     neither, was stopped by a signal), the check passed
  1  runtime failure: device, disk, damaged or failing recording
  2  usage: a wrong flag, value, combination or profile; nothing was done
  3  samples lost (counted, inferred or bounded) without --allow-loss
  4  interrupted: SIGINT/SIGTERM ended a recording before its limit
When two apply the more serious wins (1 over 3 over 4).

Settings: an explicit flag wins over the --profile, which wins over the
default. Numbers take one grammar everywhere, flags and profile keys:
k/K M G (x1000) or Ki Mi Gi (x1024), decimals if whole (2.5M), sizes
with an optional B (64KiB, 1MB).";
