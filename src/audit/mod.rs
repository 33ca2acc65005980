//! `orch audit`: checks of the live accounts of the tree, on what the AWS read path returns.
//! `finding` owns what is reported (the checks with their severity and the AWS Config rule and
//! Prowler check each matches, a finding, the outcome of an audit), `checks` finds them on the
//! keys read, `output` writes them for the terminal and as JSON, HTML or Markdown.

mod checks;
mod finding;
mod output;

pub use checks::run;
pub use output::{parse_report_path, text, write};
